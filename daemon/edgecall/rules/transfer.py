"""Transfer to a human agent: interest followed by frustration (call-rules.md section 3)."""

from __future__ import annotations

from collections.abc import Sequence

from edgecall.config.rules import TransferRuleConfig


def should_transfer(
    intents: Sequence[int], emotions: Sequence[int], cfg: TransferRuleConfig
) -> bool:
    """True when the last `intent_positive_turns` intents are all positive and the last
    `emotion_negative_turns` emotions are all negative, after a positive emotion earlier.

    `intents` and `emotions` are the per-turn tendencies of the call so far, oldest first.
    """
    if not cfg.enabled:
        return False
    n_int, n_emo = cfg.intent_positive_turns, cfg.emotion_negative_turns
    if len(intents) < n_int or len(emotions) < n_emo:
        return False
    if any(t != 1 for t in intents[-n_int:]) or any(t != -1 for t in emotions[-n_emo:]):
        return False
    if cfg.require_prior_positive_emotion:
        return 1 in emotions[:-n_emo]
    return True
