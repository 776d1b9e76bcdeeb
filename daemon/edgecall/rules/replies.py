"""Which scripted situation answers a caller turn (call-rules.md sections 2 and 6).

A sale that is agreed (intent and emotion positive, no open question) closes
the call. Otherwise, when emotion or intent changed, the reply addresses the
influencing factor (its topic's follow-up); else it follows the current
emotion, intent and what the caller asked. A refusal that persists also
closes; reaching `closing` is what makes a call complete.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from edgecall.rules.factor import Factor

# A refusal must last this many turns before the robot gives up politely.
CLOSE_AFTER_NEGATIVE_TURNS = 3


@dataclass(frozen=True)
class ReplyChoice:
    situation: str  # a prompt key of the campaign, or "followup"
    topic: str | None
    why: str


def choose_reply(
    *,
    turn: int,
    emotion: int,
    intents: Sequence[int],
    changed: bool,
    factor: Factor | None,
    asked_topics: Sequence[str],
    followup_topics: Collection[str],
) -> ReplyChoice:
    """`turn` counts from 1; `intents` are the intent tendencies so far, this turn last."""
    intent = intents[-1]
    open_topics = [t for t in asked_topics if t in followup_topics]
    if intent == 1 and emotion == 1 and not open_topics:
        return ReplyChoice("closing", None, "positive intent and emotion: sale agreed")
    if changed and factor and factor.is_topic and factor.keyword in followup_topics:
        return ReplyChoice("followup", factor.keyword, "address the influencing factor")
    if emotion == -1:
        return ReplyChoice("soothing", None, "negative emotion")
    recent = intents[-CLOSE_AFTER_NEGATIVE_TURNS:]
    if len(recent) == CLOSE_AFTER_NEGATIVE_TURNS and all(i == -1 for i in recent):
        return ReplyChoice("closing", None, "intent negative for several turns")
    if open_topics:
        return ReplyChoice("followup", open_topics[0], "answer the caller's question")
    if turn == 1:
        return ReplyChoice("product_intro", None, "first turn")
    return ReplyChoice("answer", None, "no change")
