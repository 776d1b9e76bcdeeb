"""What the telephony layer tells the rest of the daemon, as plain immutable data.

Events carry no pjsua2 objects, so they can be kept, logged and queued anywhere.
`call_id` is the SIP Call-ID of the dialog, which also appears in PBX logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgecall.telephony.quality import QualityFigures

Direction = Literal["inbound", "outbound"]
CallState = Literal["calling", "incoming", "early", "connecting", "confirmed", "disconnected"]
Outcome = Literal[
    "completed",
    "transferred",
    "busy",
    "no_answer",
    "rejected",
    "abandoned",
    "failed",
]
PlaybackEnd = Literal["completed", "barge_in", "stopped", "replaced", "hangup"]


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    registered: bool
    code: int
    reason: str
    expires_s: int


@dataclass(frozen=True, slots=True)
class IncomingCall:
    call_id: str
    remote_uri: str
    local_uri: str
    headers: dict[str, str] = field(default_factory=dict)
    #: index of the auto_answer rule that matched, None when none did (or auto-answer is off)
    rule_index: int | None = None
    #: True when the call was refused with 486 because max_concurrent_calls were active
    refused_busy: bool = False


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    call_id: str
    direction: Direction
    state: CallState
    code: int
    reason: str
    remote_uri: str
    #: set with state "disconnected"
    outcome: Outcome | None = None
    ended_by: Literal["local", "remote"] | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    call_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class SipHeaderValue:
    """A watched header (e.g. X-Signal-Strength) seen on a message of the call."""

    call_id: str
    name: str
    value: str
    #: method of the request that carried it, or "<code> <method>" for a response
    message: str


@dataclass(frozen=True, slots=True)
class QualitySample(QualityFigures):
    """One second of receive-side quality of a call (the figures: telephony.quality)."""

    call_id: str
    monotonic_s: float
    codec: str
    frames_dropped: int


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    call_id: str
    wav: str
    reason: PlaybackEnd


@dataclass(frozen=True, slots=True)
class TransferResult:
    call_id: str
    target: str
    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class MessageReceived:
    from_uri: str
    body: str
    content_type: str


@dataclass(frozen=True, slots=True)
class MessageResult:
    to_uri: str
    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


TelephonyEvent = (
    RegistrationChanged
    | IncomingCall
    | CallStateChanged
    | DtmfReceived
    | SipHeaderValue
    | QualitySample
    | PlaybackFinished
    | TransferResult
    | MessageReceived
    | MessageResult
)
