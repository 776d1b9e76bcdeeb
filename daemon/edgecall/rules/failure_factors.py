"""Which influencing factor dominates failed calls (call-rules.md section 6, seed 000).

If the top factor's share exceeds the second's by more than `min_relative_lead`
relatively (41.3% vs 22.5%: 83.6% larger, yes; 28.6% vs 25.4%: 12.6%, no), its
explanation is added to the opening product introduction: first, so the caller hears
the answer to the usual objection before the pitch (`promoted_intro`). The daemon runs
`analyse` over the campaign's recent failed calls in its history after every call.
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


def intro_change(analysis: FactorAnalysis, learned_topic: str | None) -> str | None:
    """The topic to put first in the introduction now; None leaves it as it is (a factor
    that no longer leads does not undo a change: only new evidence or a revert does)."""
    if analysis.promote is None or analysis.promote == learned_topic:
        return None
    return analysis.promote


def promoted_intro(intro: str, explanation: str, language: str) -> str:
    """The product introduction with the factor's explanation said first."""
    return f"{explanation}{'' if language == 'zh' else ' '}{intro}"


def evidence(analysis: FactorAnalysis) -> dict[str, object]:
    """Why the introduction changed, as published (schemas/intro-change.json)."""
    return {
        "failed_calls": analysis.failed_calls,
        "shares": {topic: round(share, 4) for topic, share in analysis.shares},
        "relative_lead": None
        if analysis.relative_lead is None or analysis.relative_lead == float("inf")
        else round(analysis.relative_lead, 4),
    }
