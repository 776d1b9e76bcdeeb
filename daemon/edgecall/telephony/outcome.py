"""Pure decisions about calls: which auto-answer rule applies, what a call's outcome was."""

from __future__ import annotations

import re
from collections.abc import Sequence

from edgecall.config.sip import AutoAnswerRule
from edgecall.telephony.events import Direction, Outcome


def match_rule(rules: Sequence[AutoAnswerRule], from_uri: str, to_uri: str) -> int | None:
    """Index of the first rule whose patterns match the caller and called URIs."""
    for i, rule in enumerate(rules):
        if re.search(rule.match_from, from_uri) and re.search(rule.match_to, to_uri):
            return i
    return None


def call_outcome(
    direction: Direction,
    *,
    confirmed: bool,
    code: int,
    ring_timed_out: bool,
    transferred: bool,
    rejected_locally: bool,
) -> Outcome:
    """Outcome of a call that has just been disconnected.

    `code` is the last SIP status of the INVITE (or of the BYE/CANCEL once confirmed).
    """
    if transferred:
        return "transferred"
    if confirmed:
        return "completed"
    if direction == "inbound":
        if rejected_locally:
            return "busy" if code in (486, 600) else "rejected"
        return "abandoned"
    if ring_timed_out or code in (408, 480, 487):
        return "no_answer"
    if code in (486, 600):
        return "busy"
    if code in (603, 403):
        return "rejected"
    return "failed"
