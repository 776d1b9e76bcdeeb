"""Emotion tendency: fuse a text estimate and an acoustic estimate (call-rules.md section 1).

Both estimates are scores in [-1, 1] (negative to positive). When one is missing
the other decides alone, and the result says which sources were used, so head
office can tell a model outage from a calm caller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgecall.config.rules import EmotionRuleConfig

DECIMALS = 6


@dataclass(frozen=True)
class Emotion:
    score: float
    tendency: int
    sources: tuple[str, ...]  # subset of ("text", "acoustic") that were used
    missing: tuple[str, ...]  # the ones that were not available


def lexicon_score(counts: Counter[str]) -> float:
    """(positive - negative) / (positive + negative) over mood phrases; 0 when none is found."""
    pos, neg = counts.get("emotion_positive", 0), counts.get("emotion_negative", 0)
    return 0.0 if pos + neg == 0 else (pos - neg) / (pos + neg)


def fuse(text: float | None, acoustic: float | None, cfg: EmotionRuleConfig) -> Emotion:
    parts = {"text": text, "acoustic": acoustic}
    for name, value in parts.items():
        if value is not None and not -1.0 <= value <= 1.0:
            raise ValueError(f"{name} emotion score {value} is outside [-1, 1]")
    used = tuple(n for n, v in parts.items() if v is not None)
    missing = tuple(n for n, v in parts.items() if v is None)
    if not used:
        return Emotion(0.0, 0, (), missing)
    if len(used) == 2:
        score = cfg.text_weight * text + cfg.acoustic_weight * acoustic  # type: ignore[operator]
    else:
        score = parts[used[0]]  # type: ignore[assignment]
    score = round(score, DECIMALS)
    return Emotion(score, emotion_tendency(score, cfg), used, missing)


def emotion_tendency(score: float, cfg: EmotionRuleConfig) -> int:
    if score <= cfg.negative_max:
        return -1
    if score >= cfg.positive_min:
        return 1
    return 0
