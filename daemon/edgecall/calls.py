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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from edgecall.config.root import EdgecallConfig
from edgecall.messages import Identity
from edgecall.recording import CallRecording, recording_path
from edgecall.rules.replies import ReplyChooser
from edgecall.rules.scene import SceneClassifier
from edgecall.rules.session import (
    Action,
    AddToDoNotCall,
    CallSession,
    Customer,
    HangUp,
    Lexicons,
    Message,
    Say,
    SendSms,
    Transfer,
    VariantSource,
)
from edgecall.speech.speaker import Piece, Speech
from edgecall.trunk.modem import SignalPoller
from edgecall.trunk.quality import QualityCombiner

log = logging.getLogger("edgecall.calls")

# 20 ms frames are gathered into chunks before analysis: each chunk is one worker round
# trip (~0.3 ms of CPU), and the wait for the chunk that ends a turn adds to the reply's
# latency. So chunks are short while the caller talks and for TALKING_S after (when a
# turn can end), and long otherwise (a prompt playing, a quiet line).
FRAMES_PER_CHUNK = 5
FRAMES_PER_CHUNK_TALKING = 2
TALKING_S = 1.5
# How long the outcome may wait for a pending SMS result after the hang-up.
SMS_GRACE_S = 35.0
# How long the caller's last audio frames may take to reach analysis after the hang-up.
LISTEN_GRACE_S = 3.0
# How long queued actions may take to finish once the dialog has ended.
ACTIONS_GRACE_S = 10.0
# A chunk louder than this (RMS of 16-bit samples, about -41 dBFS) is the caller
# making a sound; quieter is line noise. Only silence long enough closes a call, so a
# noisy line errs towards waiting, never towards hanging up on someone who is talking.
SOUND_RMS = 300.0


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
    def frame_counts(self, call_id: str) -> tuple[int, int]: ...
    async def play(self, call_id: str, wav: str | Path, *, barge_in: bool = False) -> str: ...
    async def hangup(self, call_id: str, reason: str = "normal clearing") -> None: ...
    async def transfer(self, call_id: str, target: str) -> Any: ...


class Publisher(Protocol):
    """The part of `edgecall.mqtt.link.MqttLink` a call needs."""

    async def publish_event(self, message: dict[str, Any]) -> str: ...
    async def publish_outcome(self, message: dict[str, Any]) -> str: ...
    async def publish_prompt(self, extension: str, message: dict[str, Any]) -> str: ...


class SpeechPort(Protocol):
    """The part of `edgecall.speech.speaker.Speaker` a call needs."""

    def speech(
        self,
        language: str,
        text: str,
        *,
        wav: Path | None = None,
        cacheable: bool = True,
    ) -> tuple[Speech, AsyncIterator[Piece]]: ...


class SmsPort(Protocol):
    async def send(self, number: str, text: str, *, call_id: str | None = None) -> Any: ...


class DoNotCallPort(Protocol):
    """The part of `edgecall.dnc.DoNotCallList` a call needs."""

    def add(self, number: str, *, reason: str, call_id: str | None, t: float) -> bool: ...


@dataclass
class CallServices:
    """What every call shares: built once by the appliance, replaced on reload."""

    cfg: EdgecallConfig
    lexicons: Lexicons
    identity: Identity
    telephony: TelephonyPort
    publisher: Publisher
    analyzer: Analyzer | None = None
    speaker: SpeechPort | None = None  # None: prompts are not spoken (logged per prompt)
    classifier: SceneClassifier | None = None
    sms: SmsPort | None = None
    dnc: DoNotCallPort | None = None  # numbers whose callers asked never to be called again
    modem_signal: SignalPoller | None = None  # when the trunk modem is a quality source
    # Called with the outcome before it is published, e.g. to queue the redial it asks for,
    # so head office can never act on an outcome the appliance has not acted on yet.
    on_outcome: Callable[[CallController, dict[str, Any]], None] | None = None
    variants: VariantSource | None = None  # None: no history, variants in equal shares
    replies: ReplyChooser | None = None  # None: the rules' order, rules.replies.explore
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
        customer: Customer | None = None,
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
            customer=customer,
            variants=services.variants,
            replies=services.replies,
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
        self._last_sound = time.monotonic()  # the caller's last sound, or the last prompt's end
        self._talked = float("-inf")  # the caller's last sound
        self._busy = 0  # actions queued or running: the robot is talking or acting
        self._recording: CallRecording | None = None
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
        storage = self.svc.cfg.storage
        if storage.recordings_dir is not None:
            directory = storage.state_dir / storage.recordings_dir  # absolute stays absolute
            path = recording_path(directory, self.call_id, self.svc.clock())
            self._recording = CallRecording(path)
        self._spawn(self._run_actions(), "actions")
        self._spawn(self._sample_quality(), "quality")
        self._spawn(self._listen(), "listen")
        self._spawn(self._watch_silence(), "silence")
        self._do(self.session.opening(self.svc.clock()))

    def on_dtmf(self, digit: str) -> None:
        """A key the caller pressed (RFC 2833 or SIP INFO)."""
        self._do(self.session.key(digit, self.svc.clock()))

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
            self._end_recording()  # the listener may not have reached the end of the audio
            self._count_audio()
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
            self._busy += 1
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
            finally:
                self._busy -= 1
                self._last_sound = time.monotonic()  # silence counts from the prompt's end

    async def _carry_out(self, action: Action) -> None:
        tel = self.svc.telephony
        if self._disconnected and isinstance(action, Say | Transfer | HangUp):
            # e.g. the reply to the last words heard as the caller hung up
            self.log.info("call already ended: %s not carried out", type(action).__name__)
            return
        if isinstance(action, Say):
            await self._speak(action)
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
        elif isinstance(action, AddToDoNotCall):
            self._add_to_do_not_call(action)

    def _add_to_do_not_call(self, action: AddToDoNotCall) -> None:
        dnc = self.svc.dnc
        if dnc is None or not action.number:
            why = "no do-not-call list" if dnc is None else "caller number unknown"
            self.session.state.missing.append(f"do-not-call not recorded: {why}")
            self.log.warning("caller asked not to be called again; not recorded: %s", why)
            return
        try:
            dnc.add(action.number, reason=action.phrase, call_id=self.call_id, t=self.svc.clock())
        except ValueError as exc:
            self.session.state.missing.append(f"do-not-call not recorded: {exc}")
            self.log.warning("do-not-call for %r not recorded: %s", action.number, exc)

    async def _speak(self, say: Say) -> None:
        """Play a prompt piece by piece; report how it went in a prompt.played event."""
        asked = time.monotonic()
        first_audio_ms: float | None = None
        played_s, ended = 0.0, "completed"
        barge_in = say.barge_in
        if self.svc.speaker is None:
            speech, produced = Speech(say.text, self.session.language), None
            speech.notes.append("no speech service configured")
        else:
            speech, produced = self.svc.speaker.speech(
                self.session.language,
                say.text,
                wav=Path(say.wav) if say.wav else None,
                cacheable=not say.personal,
            )
        try:
            if produced is not None:
                async with contextlib.aclosing(produced) as pieces:
                    async for piece in pieces:
                        started = time.monotonic()
                        if first_audio_ms is None:
                            first_audio_ms = round((started - asked) * 1000.0, 1)
                        ended = await self.svc.telephony.play(
                            self.call_id, piece.path, barge_in=barge_in
                        )
                        if ended != "completed":
                            played_s += min(time.monotonic() - started, piece.duration_s)
                            break
                        played_s += piece.duration_s
        except Exception as exc:
            ended = "failed"
            speech.notes.append(f"{type(exc).__name__}: {exc}")
            self.log.exception("prompt %r could not be played", say.situation)
        if first_audio_ms is None and ended == "completed":
            ended = "failed"
            self.log.warning(
                "prompt %r not spoken, the caller hears nothing: %s",
                say.situation,
                "; ".join(speech.notes) or "no audio",
            )
        self.session.prompt_played(
            self.svc.clock(),
            situation=say.situation,
            topic=say.topic,
            text=speech.text,
            source=speech.source,
            voice=speech.voice,
            cached=speech.cached,
            ended=ended,
            played_s=round(played_s, 2),
            duration_s=round(speech.duration_s, 2),
            first_audio_ms=first_audio_ms,
            notes=speech.notes,
        )
        self._pending.set()

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
            talking = time.monotonic() - self._talked < TALKING_S
            if len(chunk) >= (FRAMES_PER_CHUNK_TALKING if talking else FRAMES_PER_CHUNK):
                pcm = b"".join(chunk)
                chunk = []
                if self._recording is not None:
                    self._recording.write(pcm)
                if _rms(pcm) > SOUND_RMS:
                    self._last_sound = self._talked = time.monotonic()
                await self._analyse(pcm)
        if chunk:
            if self._recording is not None:
                self._recording.write(b"".join(chunk))
            await self._analyse(b"".join(chunk))
        self._end_recording()

    def _count_audio(self) -> None:
        """Frames of caller audio the analysis never got (its queue overflowed while it
        was behind) make the call's judgement less sure: the outcome says how many."""
        received, dropped = self.svc.telephony.frame_counts(self.call_id)
        self.log.info("caller audio: %d frames received, %d dropped", received, dropped)
        if dropped:
            self.session.state.missing.append(
                f"caller audio: {dropped} of {received} frames dropped (analysis behind)"
            )

    def _end_recording(self) -> None:
        if self._recording is None:
            return
        self._recording.close()
        if self._recording.error:
            self.session.state.missing.append(self._recording.error)
        self._recording = None

    async def _analyse(self, pcm: bytes) -> None:
        if self.svc.analyzer is None:
            return
        try:
            heard = await self.svc.analyzer.feed(self.call_id, pcm, self.session.language)
        except Exception:
            self.log.exception("analysis failed; audio chunk skipped")
            return
        self._turns(heard)

    async def _watch_silence(self) -> None:
        """No sound from the caller for silence_s while the robot is quiet: tell the session
        (which asks "are you still there?", and later closes)."""
        limit = self.svc.cfg.rules.conversation.silence_s
        while not self.session.ended and self.session.state.hangup is None:
            await asyncio.sleep(min(0.5, limit / 4))
            if self._busy or self._disconnected:
                continue
            if time.monotonic() - self._last_sound >= limit:
                self._last_sound = time.monotonic()
                self._do(self.session.silence(self.svc.clock()))

    def _turns(self, heard: list[HeardUtterance]) -> None:
        if heard:
            self._last_sound = time.monotonic()
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
        self._end_recording()
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


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
