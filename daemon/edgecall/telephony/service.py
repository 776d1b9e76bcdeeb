"""The asyncio face of the telephony layer: events out, actions in, audio queues.

`Telephony` never touches pjsua2 itself: each action is submitted to the SIP
thread (see endpoint.PjRuntime) and awaited; events arrive on `events`.

    tel = Telephony(cfg, watch_headers=["X-Signal-Strength"])
    await tel.start()
    ev = await tel.events.get()             # IncomingCall, CallStateChanged, QualitySample...
    frames = tel.audio(ev.call_id)          # asyncio.Queue of 640-byte frames, None at the end
    reason = await tel.play(ev.call_id, "prompt.wav", barge_in=True)
    result = await tel.transfer(ev.call_id, "8000")
    await tel.stop()

Limits of the pjsua2 we build (third_party/build-pjsua2.sh, pjproject 2.15.1 with
third_party/pjproject/config_site.h):
- At most 64 simultaneous calls per process (PJSUA_MAX_CALLS); sip.max_concurrent_calls
  above the linked library's limit is refused at start. An INVITE beyond the configured
  maximum gets our 486, or pjsua's own when every slot is taken; both are published as
  IncomingCall(refused_busy=True).
- 1024 sockets per ioqueue (two per audio call), 128 WAV players and 128 recorders.
- TLS comes from the system OpenSSL 3 (libssl.so.3: TLS 1.2 and 1.3, Debian's security
  updates). pjsip loads no default CA store: verifying the PBX needs `tls.ca_file`
  (its CA, or /etc/ssl/certs/ca-certificates.crt for a public one).
- The first lines pjlib prints at library creation go to stdout, before our log
  writer is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecall.config.base import SecretError
from edgecall.config.sip import SipConfig
from edgecall.telephony.endpoint import PjRuntime, TelephonyError
from edgecall.telephony.engine import SipEngine
from edgecall.telephony.events import (
    CallStateChanged,
    MessageResult,
    PlaybackEnd,
    RegistrationChanged,
    TelephonyEvent,
    TransferResult,
)
from edgecall.telephony.media import AudioSink

__all__ = ["Telephony", "TelephonyError"]

log = logging.getLogger("edgecall.telephony")

_REJECT_CODES = (480, 486, 600, 603)
_SINK_LINGER_S = 60.0
_STALL_S = 2.0  # a finished call's audio queue stays reachable this long


class Telephony:
    """One SIP extension: registration, inbound and outbound calls, media, actions."""

    def __init__(
        self,
        cfg: SipConfig,
        *,
        watch_headers: Sequence[str] = (),
        auto_answer: bool = True,
        pj_log_level: int = 2,
    ) -> None:
        self.cfg = cfg
        self.events: asyncio.Queue[TelephonyEvent] = asyncio.Queue()
        self.registered = False
        self._watch = tuple(watch_headers)
        self._auto_answer = auto_answer
        self._pj_log_level = pj_log_level
        self._rt = PjRuntime()
        self._engine: SipEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sinks: dict[str, AudioSink] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the SIP stack and begin registering; returns before registration completes.

        Raises TelephonyError (with a message fit for a log line) when the password
        cannot be read or the stack cannot bind its transport.
        """
        if self._engine is not None:
            raise TelephonyError("telephony already started")
        try:
            password = self.cfg.password.resolve().get_secret_value()
        except SecretError as exc:
            raise TelephonyError(f"SIP password: {exc}") from None
        self._loop = asyncio.get_running_loop()
        engine = SipEngine(
            self.cfg,
            password,
            self._rt,
            self._loop,
            self._emit,
            self._add_sink,
            watch_headers=self._watch,
            auto_answer=self._auto_answer,
            log_level=self._pj_log_level,
        )

        def configure(ep: Any) -> None:
            engine.configure(ep)
            self._rt.schedule(1.0, tick)

        def tick() -> None:
            engine.sample_quality()
            self._rt.schedule(1.0, tick)

        await self._loop.run_in_executor(
            None, lambda: self._rt.start(engine.ep_config, configure, self._pj_log_level)
        )
        self._engine = engine
        # Nothing on this thread calls pjsua2, but a stray destructor must not abort us.
        self._rt.register_current_thread("asyncio")

    async def stop(self) -> None:
        """Hang up every call, unregister, destroy the library. Safe to call twice."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        assert self._loop is not None
        await self._loop.run_in_executor(None, lambda: self._rt.stop(engine.shutdown))
        self.registered = False
        log.info("telephony stopped")

    @property
    def running(self) -> bool:
        """Healthy enough for a watchdog: the SIP thread is iterating and every call that
        has carried audio delivered a frame within the last two seconds."""
        if self._engine is None or not self._rt.running:
            return False
        now = time.monotonic()
        if now - self._rt.heartbeat > _STALL_S:
            return False
        return all(
            now - s.last_frame < _STALL_S
            for s in self._sinks.values()
            if not s.closed and s.received
        )

    @property
    def local_port(self) -> int:
        """The local SIP port actually bound (useful when configured as 0)."""
        return self._require().local_port

    # -- events and audio ------------------------------------------------------------------

    def _emit(self, ev: TelephonyEvent) -> None:
        """Called on the SIP thread."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._deliver_event, ev)

    def _deliver_event(self, ev: TelephonyEvent) -> None:
        if isinstance(ev, RegistrationChanged):
            self.registered = ev.registered
        elif isinstance(ev, CallStateChanged) and ev.state == "disconnected":
            assert self._loop is not None
            self._loop.call_later(_SINK_LINGER_S, self._sinks.pop, ev.call_id, None)
        self.events.put_nowait(ev)

    def _add_sink(self, call_id: str, sink: AudioSink) -> None:
        self._sinks[call_id] = sink

    def audio(self, call_id: str) -> asyncio.Queue[bytes | None]:
        """The call's caller-audio queue: 640-byte 16 kHz int16 mono frames, None at the end.

        Available from IncomingCall (or originate's return) until a minute after the end."""
        return self._call_sink(call_id).queue

    def frame_counts(self, call_id: str) -> tuple[int, int]:
        """(frames received, frames dropped because the queue was full) for a call."""
        sink = self._call_sink(call_id)
        return sink.received, sink.dropped

    def active_calls(self) -> list[str]:
        return [k for k, s in self._sinks.items() if not s.closed]

    def _call_sink(self, call_id: str) -> AudioSink:
        sink = self._sinks.get(call_id)
        if sink is None:
            raise TelephonyError(f"no call {call_id!r}")
        return sink

    # -- actions ---------------------------------------------------------------------------

    async def answer(self, call_id: str) -> None:
        await self._run(lambda e: e.answer(call_id))

    async def reject(self, call_id: str, code: int = 486) -> None:
        if code not in _REJECT_CODES:
            raise TelephonyError(f"reject code must be one of {_REJECT_CODES}, not {code}")
        await self._run(lambda e: e.reject(call_id, code))

    async def originate(self, number: str, headers: dict[str, str] | None = None) -> str:
        """Place a call through the PBX; returns its call id. Progress and the outcome
        (completed, busy, no_answer, rejected, failed) arrive as CallStateChanged."""
        return await self._run(lambda e: e.originate(number, headers))

    async def hangup(self, call_id: str, reason: str = "normal clearing") -> None:
        """End (or decline, if still ringing) a call; `reason` goes in a Reason header."""
        await self._run(lambda e: e.hangup(call_id, reason))

    async def play(self, call_id: str, wav: str | Path, *, barge_in: bool = False) -> PlaybackEnd:
        """Play a WAV prompt to the caller and wait until it ends; returns why it ended
        (completed, barge_in, stopped, replaced, hangup)."""
        path = Path(wav)
        if not path.is_file():
            raise TelephonyError(f"prompt file not found: {path}")
        fut: asyncio.Future[PlaybackEnd] = asyncio.get_running_loop().create_future()
        await self._run(lambda e: e.play(call_id, str(path), barge_in, fut))
        return await fut

    async def stop_playback(self, call_id: str) -> bool:
        """Stop the call's prompt, if one is playing."""
        return await self._run(lambda e: e.stop_prompt(call_id, "stopped"))

    async def transfer(
        self, call_id: str, target: str, timeout_s: float | None = None
    ) -> TransferResult:
        """Blind transfer (REFER) to an extension, queue or SIP URI; waits for the final
        NOTIFY. On success the call is hung up with outcome 'transferred'."""
        fut: asyncio.Future[TransferResult] = asyncio.get_running_loop().create_future()
        await self._run(lambda e: e.transfer(call_id, target, fut))
        limit = timeout_s if timeout_s is not None else self.cfg.ring_timeout_s + 10
        try:
            return await asyncio.wait_for(fut, limit)
        except TimeoutError:
            return TransferResult(call_id, target, 408, "no final transfer status")

    async def send_message(
        self, number_or_uri: str, text: str, timeout_s: float = 30.0
    ) -> MessageResult:
        """Send a SIP MESSAGE (text/plain) outside any call and wait for its final response."""
        fut: asyncio.Future[MessageResult] = asyncio.get_running_loop().create_future()
        await self._run(lambda e: e.send_message(number_or_uri, text, fut))
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return MessageResult(number_or_uri, 408, "no final response")

    # -- plumbing --------------------------------------------------------------------------

    def _require(self) -> SipEngine:
        if self._engine is None:
            raise TelephonyError("telephony is not running")
        return self._engine

    async def _run(self, fn: Any) -> Any:
        engine = self._require()
        return await asyncio.wrap_future(self._rt.submit(lambda: fn(engine)))
