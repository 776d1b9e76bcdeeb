"""The pjsua2 Call subclass and the per-call state the SIP thread keeps beside it.

A `SipCall` is referenced from the engine's call table until DISCONNECTED has been
handled, then dropped on the SIP thread (never inside its own callback).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import pjsua2 as pj

from edgecall.telephony.events import Direction
from edgecall.telephony.media import AudioSink, FramePort, PromptPlayer
from edgecall.telephony.quality import RtpCounters


class CallHandler(Protocol):
    def on_call_state(self, call: SipCall) -> None: ...
    def on_call_media_state(self, call: SipCall) -> None: ...
    def on_dtmf(self, call: SipCall, digit: str) -> None: ...
    def on_tsx_state(self, call: SipCall, prm: pj.OnCallTsxStateParam) -> None: ...
    def on_transfer_status(self, call: SipCall, prm: pj.OnCallTransferStatusParam) -> None: ...


class SipCall(pj.Call):
    def __init__(
        self,
        acc: pj.Account,
        handler: CallHandler,
        direction: Direction,
        sink: AudioSink,
        call_id: int = pj.PJSUA_INVALID_ID,
    ) -> None:
        super().__init__(acc, call_id)
        self.handler = handler
        self.direction: Direction = direction
        self.sink = sink
        self.key = ""
        self.remote_uri = ""
        self.confirmed = False
        self.disconnected = False
        self.ring_timed_out = False
        self.transferred = False
        self.rejected_locally = False
        self.ended_by: str | None = None
        self.audio: pj.AudioMedia | None = None
        self.audio_index = -1
        self.port: FramePort | None = None
        self.player: PromptPlayer | None = None
        self.prompt_wav = ""
        self.prompt_token = 0
        self.prompt_future: asyncio.Future[str] | None = None
        self.transfer_target = ""
        self.transfer_future: asyncio.Future | None = None
        self.prev_counters: RtpCounters | None = None
        self.silent_seconds = 0

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802 - pjsua2 API
        self.handler.on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        self.handler.on_call_media_state(self)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        self.handler.on_dtmf(self, prm.digit)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:  # noqa: N802
        self.handler.on_tsx_state(self, prm)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        self.handler.on_transfer_status(self, prm)
