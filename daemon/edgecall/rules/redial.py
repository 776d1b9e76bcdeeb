"""Redial after an early hang-up in poor quality with interest (call-rules.md section 5)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from edgecall.config.rules import DelayRange, RedialRuleConfig
from edgecall.rules.phrases import PhraseMatcher
from edgecall.rules.scene import SceneClassifier


@dataclass(frozen=True)
class Redial:
    scene: str
    delay_s: int
    decided_by: str  # "stated_reason", "scene_model" or "default"
    stated_phrase: str | None = None
    confidence: float | None = None


def global_quality(samples: Sequence[float | None]) -> float | None:
    """Mean of the samples present; None when the call has no quality sample at all."""
    present = [s for s in samples if s is not None]
    return round(sum(present) / len(present), 2) if present else None


def stated_reason(
    utterances: Sequence[str], language: str, cfg: RedialRuleConfig
) -> tuple[int, str] | None:
    """(index into cfg.stated_reasons, phrase) of the latest reason the caller stated."""
    matcher = PhraseMatcher(
        {str(i): r.phrases.get(language, []) for i, r in enumerate(cfg.stated_reasons)}, language
    )
    for text in reversed(utterances):
        hits = matcher.hits(text)
        if hits:
            return int(hits[0].category), hits[0].phrase
    return None


def draw_delay(delay: DelayRange, call_id: str) -> int:
    """A delay within the range, fixed per call (seeded by the call id) so replays are
    reproducible and redials of many calls cut off together spread over the range."""
    seed = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    return random.Random(seed).randint(delay.min_s, delay.max_s)


def decide_redial(
    *,
    call_id: str,
    quality: float | None,
    emotion: int,
    intent: int,
    utterances: Sequence[str],
    trace: Sequence[float | None],
    language: str,
    cfg: RedialRuleConfig,
    classifier: SceneClassifier | None,
) -> Redial | None:
    """The redial mark, or None when the call does not qualify."""
    if not cfg.enabled or quality is None or quality >= cfg.normal_quality_dbm:
        return None
    if emotion != 1 and intent != 1:
        return None
    reason = stated_reason(utterances, language, cfg)
    if reason is not None:
        rule = cfg.stated_reasons[reason[0]]
        return Redial(rule.scene, draw_delay(rule.delay, call_id), "stated_reason", reason[1])
    if classifier is not None:
        guess = classifier.classify(trace)
        if guess.confidence >= cfg.min_scene_confidence and guess.scene in cfg.scene_delays:
            delay = draw_delay(cfg.scene_delays[guess.scene], call_id)
            return Redial(guess.scene, delay, "scene_model", confidence=guess.confidence)
    return Redial("unknown", draw_delay(cfg.scene_delays["unknown"], call_id), "default")
