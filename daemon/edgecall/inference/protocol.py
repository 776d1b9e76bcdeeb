"""Messages between the daemon and its inference worker processes.

Kept apart from `worker.py` so the worker side imports nothing it does not need.
Everything here crosses a pipe, so it is plain picklable data. Deadlines are
`time.monotonic()` values: on Linux that is CLOCK_MONOTONIC, one clock for every
process on the machine, so the worker can skip a request the daemon has already
given up on.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

# Frames both ways: an 8-byte request id (0 for a WorkerEvent), then the pickled
# message. The id comes first so a message the other side cannot unpickle (a type
# only one side can import) still reaches the request it belongs to.
STOP = b""  # the empty frame, daemon -> worker: finish and exit
_ID_BYTES = 8

Status = Literal["ok", "error", "missing"]


class Priority(IntEnum):
    """Which requests survive overload: the oldest LOW ones are dropped first."""

    LOW = 0  # periodic estimates a later request supersedes (scene, acoustic emotion)
    NORMAL = 1
    HIGH = 2  # a caller's utterance: losing it loses words


@dataclass(frozen=True, slots=True)
class Request:
    """One handler method call; `audio` is 16-bit little-endian mono PCM."""

    id: int
    model: str
    method: str
    deadline: float
    kwargs: dict[str, Any] = field(default_factory=dict)
    audio: bytes | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What a request came to; never raised, always returned.

    status "ok": `value` holds the handler's return value.
    status "error": the handler (or its model load) failed for this request; `reason` says why.
    status "missing": no estimate was produced in time (timeout, worker crash or restart,
    overload, shutdown); `reason` says which, for the event that reports the gap.
    """

    id: int
    model: str
    status: Status
    value: Any = None
    reason: str | None = None
    compute_s: float | None = None  # time inside the handler, measured by the worker
    worker: int | None = None  # index of the worker that answered
    generation: int | None = None  # that worker's start count: a change means state was lost

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def gap(self) -> str | None:
        """Why the estimate is missing, in one word for the call's events; None when ok.

        "error", or the cause of a missing result: timeout, hung, crash, overloaded,
        unavailable or shutdown.
        """
        if self.status == "ok":
            return None
        if self.status == "error":
            return "error"
        return (self.reason or "missing").split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """Worker life signs other than results: 'ready', 'loading', 'loaded', 'load_failed'."""

    kind: Literal["ready", "loading", "loaded", "load_failed"]
    model: str | None = None
    detail: str | None = None
    seconds: float | None = None


def encode(msg_id: int, msg: Any) -> bytes:
    """One frame; raises what pickle raises when `msg` cannot be pickled."""
    return msg_id.to_bytes(_ID_BYTES, "little") + pickle.dumps(msg, protocol=5)


def decode(frame: bytes) -> tuple[int, Any]:
    """(id, message), or (id, the exception) when the body cannot be unpickled."""
    msg_id = int.from_bytes(frame[:_ID_BYTES], "little")
    try:
        return msg_id, pickle.loads(frame[_ID_BYTES:])
    except Exception as exc:  # e.g. a type this side cannot import
        return msg_id, exc
