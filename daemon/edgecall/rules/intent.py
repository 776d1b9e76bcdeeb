"""Purchase intent: seed 000's parametric method (call-rules.md section 1).

Four indicators counted over the call so far are normalised to [0, 1] and
weighted. The default caps reproduce the seed's worked example exactly:
counts (3 turns, 2 positive, 0 negative, 0 price) -> (0.6, 0.8, 1, 0) -> 0.72.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecall.config.rules import IntentRuleConfig

# Values are rounded so that boundaries such as 0.36 compare as a person reads them
# (0.3*0.6 + ... is 0.35999999999999999 in binary floating point).
DECIMALS = 6


@dataclass(frozen=True)
class IntentCounts:
    turns: int = 0
    positive: int = 0
    negative: int = 0
    price: int = 0

    def plus(self, positive: int, negative: int, price: int) -> IntentCounts:
        """Counts after one more caller turn."""
        return IntentCounts(
            self.turns + 1, self.positive + positive, self.negative + negative, self.price + price
        )


@dataclass(frozen=True)
class Intent:
    value: float
    tendency: int
    normalised: tuple[float, float, float, float]


def normalise(counts: IntentCounts, cfg: IntentRuleConfig) -> tuple[float, float, float, float]:
    """Each indicator in [0, 1]; more negative words give a lower value."""
    return (
        min(counts.turns / cfg.turns_cap, 1.0),
        min(counts.positive / cfg.positive_cap, 1.0),
        max(1.0 - counts.negative / cfg.negative_cap, 0.0),
        min(counts.price / cfg.price_cap, 1.0),
    )


def purchase_intent(counts: IntentCounts, cfg: IntentRuleConfig) -> Intent:
    norm = normalise(counts, cfg)
    weights = (cfg.weight_turns, cfg.weight_positive, cfg.weight_negative, cfg.weight_price)
    value = round(sum(w * n for w, n in zip(weights, norm, strict=True)), DECIMALS)
    return Intent(value, intent_tendency(value, cfg), tuple(round(n, DECIMALS) for n in norm))


def intent_tendency(value: float, cfg: IntentRuleConfig) -> int:
    """[0, negative_max] -> -1, [positive_min, 1] -> 1, neutral between (both ends inclusive)."""
    if value <= cfg.negative_max:
        return -1
    if value >= cfg.positive_min:
        return 1
    return 0
