"""Which reply a caller turn gets when there is a choice, and what the reply earned (seed 002).

At a turn the flow engine may have several fitting replies: answer the topic the caller
asked about (one per topic), address the influencing factor, soothe, or carry on with
the node's own question or answer (`CONTINUE`). The rules rank them in call-rules order;
a model trained on the box's history (`edgecall.reply_model`) may rank them instead,
from the turn's features (`reply_features`: topics and keywords, fused emotion, intent
and their change, the signal, the previous turn's reply).

The model learns from replies that worked. Each reply's feedback score (0-100,
`feedback_score`) comes from the caller's next turn and the call's outcome; replies
above `rules.replies.feedback_threshold` are training samples (seed 002: 80 > 60). A
model that only ever sees the rules' choices can only copy them, so a small share of
turns (`explore`) says another candidate, and every choice is recorded with the
probability it had: training weighs each sample by its inverse, so a reply that is
rarely tried but often works counts for what it earns.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgecall.config.rules import FeedbackScoreConfig

CONTINUE = "continue"  # the node's own step: its answer, the declined node, or asking again


class ReplyScorer(Protocol):
    """A trained model's preference among reply kinds for one turn's features."""

    def scores(self, features: Mapping[str, float], options: Sequence[str]) -> dict[str, float]:
        """A score per option the model knows (higher is better); options it never saw are
        left out."""
        ...


@dataclass(frozen=True)
class ReplyChoice:
    kind: str  # the reply said: followup.<topic>, soothing or continue
    options: tuple[str, ...]  # the candidates, in the rules' order (the first is theirs)
    by: str  # rules, model, or explore
    p: float  # the probability this choice had, for training
    features: Mapping[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "options": list(self.options),
            "by": self.by,
            "p": round(self.p, 6),
            "features": {k: round(v, 4) for k, v in sorted(self.features.items())},
        }


class ReplyChooser:
    def __init__(self, model: ReplyScorer | None = None, explore: float = 0.0) -> None:
        self.model = model
        self.explore = explore

    def choose(
        self, options: Sequence[str], features: Mapping[str, float], rng: random.Random
    ) -> ReplyChoice:
        greedy, by = options[0], "rules"
        if self.model is not None:
            scores = self.model.scores(features, options)
            if scores:
                greedy = max(options, key=lambda o: scores.get(o, float("-inf")))
                by = "model"
        n, pick = len(options), greedy
        if n > 1 and self.explore > 0 and rng.random() < self.explore:
            pick = options[rng.randrange(n)]
            by = by if pick == greedy else "explore"
        share = self.explore / n if n > 1 else 0.0
        p = 1.0 - self.explore + share if pick == greedy else share
        return ReplyChoice(pick, tuple(options), by, p, features)


def reply_features(
    *,
    node: str,
    emotion: float,
    emotion_tendency: int,
    intent: float,
    intent_tendency: int,
    previous: tuple[int, int] | None,  # the previous turn's emotion and intent tendencies
    topics: Sequence[str],
    asked_before: Sequence[str],
    factor_topic: str | None,
    positive_words: int,
    negative_words: int,
    previous_reply: str | None,
    turn: int,
    signal_dbm: float | None,
) -> dict[str, float]:
    """What a turn looks like to the reply model: named values, most of them 0/1."""
    f: dict[str, float] = {
        f"node={node}": 1.0,
        "emotion": emotion,
        f"emotion_tendency={emotion_tendency}": 1.0,
        "intent": intent,
        f"intent_tendency={intent_tendency}": 1.0,
        "positive_words": float(min(positive_words, 3)),
        "negative_words": float(min(negative_words, 3)),
        "turn": min(turn, 10) / 10,
    }
    if previous is not None:
        f["emotion_change"] = float(emotion_tendency - previous[0])
        f["intent_change"] = float(intent_tendency - previous[1])
    for topic in topics:
        f[f"topic={topic}"] = 1.0
        if topic in asked_before:
            f[f"asked_again={topic}"] = 1.0
    if factor_topic:
        f[f"factor={factor_topic}"] = 1.0
    if previous_reply:
        f[f"previous={previous_reply}"] = 1.0
    if signal_dbm is not None:
        f["signal"] = max(-1.5, min(0.0, signal_dbm / 100))
    return f


def feedback_score(
    this: tuple[int, int],
    following: tuple[int, int] | None,
    outcome: str | None,
    sale: bool,
    weights: FeedbackScoreConfig,
) -> float:
    """Seed 002's feedback score of a reply, 0-100. `this` and `following`: (emotion,
    intent) tendencies of the turn the reply answered and of the caller's next turn
    (None: there was none)."""
    if sale:
        score = weights.sale
    else:
        score = {
            "transferred": weights.transferred,
            "redial_scheduled": weights.redial_scheduled,
        }.get(outcome or "", weights.other)
    if following is None:
        if not sale:
            score += weights.left
    else:
        for now, then in zip(this, following, strict=True):
            score += weights.per_step * max(-2, min(2, then - now))
    return max(0.0, min(100.0, score))
