"""One call from answer to outcome: telephony, quality, analysis and rules wired together.

The controller is the only place where the pure rule engine (`CallSession`)
meets I/O. It feeds the session telephony events, the 1 Hz quality series and
the caller's analysed utterances; it carries out the session's actions (play a
prompt, transfer, hang up, send the SMS) in order; and it publishes every
message the session produces. Whatever fails on the way (a prompt file, the
transfer, the analysis worker), the call still ends with exactly one outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from edgecall.config.root import EdgecallConfig
from edgecall.messages import Identity
from edgecall.rules.scene import SceneClassifier
from edgecall.rules.session import (
    Action,
    CallSession,
    HangUp,
    Lexicons,
    Message,
    Say,
    SendSms,
    Transfer,
)
from edgecall.trunk.modem import SignalPoller
from edgecall.trunk.quality import QualityCombiner

log = logging.getLogger("edgecall.calls")

# 20 ms frames are gathered into 100 ms chunks before analysis: each chunk is one worker
# round trip (~0.2 ms), and the wait for a chunk to fill adds to the turn latency.
FRAMES_PER_CHUNK = 5
# How long the outcome may wait for a pending SMS result after the hang-up.
SMS_GRACE_S = 35.0
# How long the caller's last audio frames may take to reach analysis after the hang-up.
LISTEN_GRACE_S = 3.0
# How long queued actions may take to finish once the dialog has ended.
ACTIONS_GRACE_S = 10.0
# Prompts the caller cannot talk over: they end the call or hand it on.
NO_BARGE_IN = frozenset({"network_problem", "transfer_notice", "closing"})


@dataclass(frozen=True)
class HeardUtterance:
    """One caller utterance as analysis delivers it (ASR endpoint reached)."""

    text: str
    end_s: float  # seconds since the call's audio started
    acoustic: float | None = None  # acoustic emotion estimate in [-1, 1], None if missing
    text_score: float | None = None  # text emotion estimate in [-1, 1], None: use the lexicon


class Analyzer(Protocol):
    """Speech analysis of one call's audio, running outside the SIP process's GIL."""

    async def feed(self, call_id: str, pcm: bytes, language: str) -> list[HeardUtterance]: ...
    async def flush(self, call_id: str, language: str) -> list[HeardUtterance]: ...
    async def close_call(self, call_id: str) -> None: ...


class TelephonyPort(Protocol):
    """The part of `edgecall.telephony.Telephony` a call needs."""

    def audio(self, call_id: str) -> asyncio.Queue[bytes | None]: ...
    async def play(self, call_id: str, wav: str | Path, *, barge_in: bool = False) -> str: ...
    async def hangup(self, call_id: str, reason: str = "normal clearing") -> None: ...
    async def transfer(self, call_id: str, target: str) -> Any: ...


class Publisher(Protocol):
    """The part of `edgecall.mqtt.link.MqttLink` a call needs."""

    async def publish_event(self, message: dict[str, Any]) -> str: ...
    async def publish_outcome(self, message: dict[str, Any]) -> str: ...
    async def publish_prompt(self, extension: str, message: dict[str, Any]) -> str: ...


class SmsPort(Protocol):
    async def send(self, number: str, text: str, *, call_id: str | None = None) -> Any: ...


@dataclass
class CallServices:
    """What every call shares: built once by the appliance, replaced on reload."""

    cfg: EdgecallConfig
    lexicons: Lexicons
    identity: Identity
    telephony: TelephonyPort
    publisher: Publisher
    analyzer: Analyzer | None = None
    classifier: SceneClassifier | None = None
    sms: SmsPort | None = None
    modem_signal: SignalPoller | None = None  # when the trunk modem is a quality source
    # Called with the outcome before it is published, e.g. to queue the redial it asks for,
    # so head office can never act on an outcome the appliance has not acted on yet.
    on_outcome: Callable[[CallController, dict[str, Any]], None] | None = None
    base_dir: Path = Path(".")
    clock: Callable[[], float] = time.time


class CallController:
    def __init__(
        self,
        services: CallServices,
        *,
        call_id: str,
        direction: Literal["inbound", "outbound"],
        remote: str | None,
        campaign: str | None = None,
        language: str | None = None,
        ref: str | None = None,
    ) -> None:
        self.svc = services
        self.call_id = call_id
        self.log = logging.LoggerAdapter(log, {"call_id": call_id})
        self.session = CallSession(
            services.cfg,
            services.lexicons,
            services.identity,
            call_id=call_id,
            direction=direction,
            remote=remote,
            t=services.clock(),
            language=language,
            campaign=campaign,
            classifier=services.classifier,
            ref=ref,
        )
        self.quality = QualityCombiner(services.cfg.trunk, start_t=time.monotonic())
        self._actions: asyncio.Queue[Action | None] = asyncio.Queue()
        self._pending = asyncio.Event()  # the session has messages to publish
        self._publish_lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task] = {}
        self._sms_task: asyncio.Task | None = None
        self._confirmed = False
        self._hung_up_locally = False
        self._disconnected = False  # the dialog is gone: nothing more can be played or sent
        self._unsubscribe_modem: Callable[[], None] | None = None
        self.last_sample: dict[str, Any] | None = None  # for the stats message
        self.finished = asyncio.Event()

    def start(self) -> None:
        """Begin publishing (call.started is already waiting); call once, from the loop."""
        self._spawn(self._publish_loop(), "publish")
        self._pending.set()

    # --- telephony inputs --------------------------------------------------------------

    def on_confirmed(self) -> None:
        """The call is up: greet, listen, and start the quality series."""
        if self._confirmed:
            return
        self._confirmed = True
        poller = self.svc.modem_signal
        if poller is not None:
            self._unsubscribe_modem = poller.subscribe(self.quality.push_modem)
            if poller.latest is not None:
                self.quality.push_modem(*poller.latest)
        self._spawn(self._run_actions(), "actions")
        self._spawn(self._sample_quality(), "quality")
        self._spawn(self._listen(), "listen")
        self._do(self.session.opening(self.svc.clock()))

    def on_sip_header(self, value: str) -> None:
        self.quality.push_sip_header(value, time.monotonic())

    def on_rtp_stats(self, loss_pct: float, jitter_ms: float, discard_pct: float) -> None:
        stats = {"loss_pct": loss_pct, "jitter_ms": jitter_ms, "discard_pct": discard_pct}
        self.quality.push_rtp(stats, time.monotonic())

    async def on_disconnected(self, *, not_connected: str | None, detail: str = "") -> None:
        """The dialog ended. `not_connected` is busy/no_answer/rejected/failed when the call
        never reached the callee; otherwise the caller or the appliance hung up."""
        self._disconnected = True
        now = self.svc.clock()
        if not_connected is not None and not self._confirmed:
            self.session.not_connected(not_connected, now, detail)  # type: ignore[arg-type]
        else:
            listener = self._tasks.get("listen")
            if listener is not None:  # the audio queue ends with None: feed every last frame
                await asyncio.wait({listener}, timeout=LISTEN_GRACE_S)
            await self._drain_analysis()  # last words, e.g. "I'm in the elevator"
            await self._finish_actions()  # e.g. the SMS queued after the hang-up
            by = "appliance" if self._hung_up_locally else "caller"
            self.session.hangup(by, self.svc.clock(), detail)
            if self._sms_task is not None and not self.session.ended:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._sms_task), SMS_GRACE_S)
        self.session.finish(self.svc.clock())
        await self._close()

    async def abort(self, reason: str) -> None:
        """Shutting down or an internal failure: still exactly one outcome."""
        if not self.session.ended:
            self.session.fail(reason, self.svc.clock())
        await self._close()

    # --- internals ------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks[name] = asyncio.create_task(coro, name=f"call:{self.call_id}:{name}")

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            self._actions.put_nowait(action)
        self._pending.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            await self._publish()

    async def _publish(self) -> None:
        """Taking and sending under one lock keeps a call's messages in sequence order."""
        async with self._publish_lock:
            for message in self.session.take_messages():
                await self._send(message)

    async def _send(self, message: Message) -> None:
        try:
            if message.kind == "outcome":
                await self.svc.publisher.publish_outcome(message.body)
            elif message.kind == "agent_prompt":
                await self.svc.publisher.publish_prompt(message.agent or "", message.body)
            else:
                await self.svc.publisher.publish_event(message.body)
        except Exception:
            # The outbox is on local disk; failing here means the disk itself failed.
            self.log.exception("could not queue %s %s", message.kind, message.body["message_id"])

    async def _run_actions(self) -> None:
        """Actions run one after another: the network prompt ends before the hang-up."""
        while (action := await self._actions.get()) is not None:
            try:
                await self._carry_out(action)
            except Exception:
                self.log.exception("action %s failed", type(action).__name__)

    async def _carry_out(self, action: Action) -> None:
        tel = self.svc.telephony
        if self._disconnected and isinstance(action, Say | Transfer | HangUp):
            # e.g. the reply to the last words heard as the caller hung up
            self.log.info("call already ended: %s not carried out", type(action).__name__)
            return
        if isinstance(action, Say):
            if action.wav is None:
                self.log.warning(
                    "no recording for prompt %r; caller hears nothing", action.situation
                )
                return
            wav = Path(action.wav)
            path = wav if wav.is_absolute() else self.svc.base_dir / wav
            await tel.play(self.call_id, path, barge_in=action.situation not in NO_BARGE_IN)
        elif isinstance(action, Transfer):
            result = await tel.transfer(self.call_id, action.target)
            ok = bool(getattr(result, "ok", False))
            detail = f"{getattr(result, 'code', '?')} {getattr(result, 'reason', '')}".strip()
            self.session.transfer_result(ok, detail, self.svc.clock())
            self._pending.set()
        elif isinstance(action, HangUp):
            self._hung_up_locally = True
            await tel.hangup(self.call_id, action.reason)
        elif isinstance(action, SendSms):
            self._sms_task = asyncio.create_task(self._send_sms(action))

    async def _send_sms(self, action: SendSms) -> None:
        if self.svc.sms is None or not action.number:
            why = "no SMS route configured" if self.svc.sms is None else "caller number unknown"
            self.session.sms_result(False, why, self.svc.clock())
        else:
            result = await self.svc.sms.send(action.number, action.text, call_id=self.call_id)
            detail = getattr(result, "error", None) or f"via {getattr(result, 'route', '?')}"
            self.session.sms_result(bool(getattr(result, "ok", False)), detail, self.svc.clock())
        self._pending.set()

    async def _sample_quality(self) -> None:
        interval = self.svc.cfg.trunk.sample_interval_s
        next_t = time.monotonic()
        while not self.session.ended and self.session.state.hangup is None:
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            tick = self.quality.sample(time.monotonic())
            self.last_sample = tick.sample
            now = self.svc.clock()
            if tick.note is not None:
                self.session.quality_note(tick.note, now)
            self._do(self.session.quality(tick.sample["dbm"], now, tick.sample["source"]))

    async def _listen(self) -> None:
        """Caller audio -> analysis -> turns. Without an analyzer the audio is drained."""
        frames = self.svc.telephony.audio(self.call_id)
        chunk: list[bytes] = []
        while (frame := await frames.get()) is not None:
            chunk.append(frame)
            if len(chunk) >= FRAMES_PER_CHUNK:
                await self._analyse(b"".join(chunk))
                chunk = []
        if chunk:
            await self._analyse(b"".join(chunk))

    async def _analyse(self, pcm: bytes) -> None:
        if self.svc.analyzer is None:
            return
        try:
            heard = await self.svc.analyzer.feed(self.call_id, pcm, self.session.language)
        except Exception:
            self.log.exception("analysis failed; audio chunk skipped")
            return
        self._turns(heard)

    def _turns(self, heard: list[HeardUtterance]) -> None:
        for u in heard:
            self._do(
                self.session.caller_turn(
                    u.text, self.svc.clock(), acoustic=u.acoustic, text_score=u.text_score
                )
            )

    async def _drain_analysis(self) -> None:
        if self.svc.analyzer is None:
            return
        try:
            self._turns(await self.svc.analyzer.flush(self.call_id, self.session.language))
        except Exception:
            self.log.exception("final analysis failed")

    async def _finish_actions(self) -> None:
        """Let queued actions run to their end (bounded), then stop the action runner."""
        self._actions.put_nowait(None)
        runner = self._tasks.get("actions")
        if runner is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(runner), ACTIONS_GRACE_S)

    async def _close(self) -> None:
        if self._unsubscribe_modem is not None:
            self._unsubscribe_modem()
        self._actions.put_nowait(None)
        workers = [t for name, t in self._tasks.items() if name != "publish"]
        for task in workers:
            task.cancel()
        if self._sms_task is not None:
            self._sms_task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self.svc.on_outcome is not None and self.session.outcome is not None:
            try:
                self.svc.on_outcome(self, self.session.outcome)
            except Exception:
                self.log.exception("outcome hook failed")
        # The publish loop is never cancelled mid-batch (it would lose the messages it has
        # taken): the lock waits for its batch, then the rest goes out here.
        await self._publish()
        publisher = self._tasks.get("publish")
        if publisher is not None:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
        if self.svc.analyzer is not None:
            with contextlib.suppress(Exception):
                await self.svc.analyzer.close_call(self.call_id)
        self.finished.set()
