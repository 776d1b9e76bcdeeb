"""Which influencing factor dominates failed calls (call-rules.md section 6, seed 000).

If the top factor's share exceeds the second's by more than `min_relative_lead`
relatively (41.3% vs 22.5%: 83.6% larger, yes; 28.6% vs 25.4%: 12.6%, no), its
explanation is added to the opening product introduction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from edgecall.config.rules import FailureFactorRuleConfig


@dataclass(frozen=True)
class FactorAnalysis:
    failed_calls: int
    shares: tuple[tuple[str, float], ...]  # factor -> share of failed calls with a factor
    relative_lead: float | None  # (top - second) / second; None with fewer than two factors
    promote: str | None  # the factor to add to the product introduction, if any


def relative_lead(top: float, second: float) -> float:
    return float("inf") if second == 0 else (top - second) / second


def analyse(factors: Iterable[str | None], cfg: FailureFactorRuleConfig) -> FactorAnalysis:
    """`factors`: the influencing factor of each failed call (None when none was found)."""
    factors = list(factors)
    counted = Counter(f for f in factors if f)
    total = sum(counted.values())
    shares = tuple((f, n / total) for f, n in counted.most_common()) if total else ()
    if len(factors) < cfg.min_failed_calls or not shares:
        return FactorAnalysis(len(factors), shares, None, None)
    if len(shares) == 1:
        return FactorAnalysis(len(factors), shares, None, shares[0][0])
    if shares[0][1] == shares[1][1]:
        return FactorAnalysis(len(factors), shares, 0.0, None)
    lead = relative_lead(shares[0][1], shares[1][1])
    return FactorAnalysis(
        len(factors), shares, lead, shares[0][0] if lead > cfg.min_relative_lead else None
    )
