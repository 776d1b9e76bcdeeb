"""Erasing one person from the box: `edgecall forget NUMBER` and the `forget` command.

A caller's number and words live in three places on the box: the call history, the
dial queue (numbers still to call or redial) and the outbox (messages not yet sent to
head office). `forget` erases the person's calls and queued items from all three. It
leaves the do-not-call list alone: that entry is the record that the person asked never
to be called, and erasing it would have them called again.
"""

from __future__ import annotations

from typing import Any

from edgecall.dialer import DialQueue
from edgecall.dnc import normalise, same_number
from edgecall.history import History
from edgecall.mqtt.outbox import Outbox

NUMBER_FIELDS = ("remote", "number")  # where a message names the caller's number


async def forget(
    number: str, *, history: History | None, dials: DialQueue, outbox: Outbox
) -> dict[str, int]:
    """Erase `number` (any spelling; ValueError if it is not one) everywhere on the box;
    returns how many calls, dial items and queued messages went."""
    key = normalise(number)
    calls = set(history.forget(number) if history is not None else [])
    found = set(calls)

    def mentions(body: dict[str, Any]) -> bool:
        # messages come oldest first: a call.started naming the number marks its call
        if any(same_number(body.get(f), key) for f in NUMBER_FIELDS):
            if isinstance(body.get("call_id"), str):
                found.add(body["call_id"])
            return True
        return body.get("call_id") in found

    queued = await outbox.erase(mentions)
    return {"calls": len(calls), "dial_items": dials.forget(number), "queued_messages": queued}
