"""Benchmark: turn-taking as a caller hears it, over real SIP (issue 13, item 4).

`edgecall run` as its own process with the shipped config (its models, its on-device
voices speaking every prompt), a real Kamailio and mosquitto on loopback, and scripted
PJSUA2 callers, as the e2e tests and bench_daemon set them up (tests.harness.lab). Each
caller (its own process, `python -m tests.bench.bench_turns --peer`, below) listens to the
robot, waits until a prompt has ended, thinks a moment and answers with a campaign-like
utterance (synthesized with the on-device voices through `edgecall say --codec g722`, or
with espeak-ng: `--voice espeak`), and records, frame by frame, what it sent and what it
heard. Some answers have a pause inside ("I would like to know about, um, [0.7 s] the data
allowance", "My current plan costs [0.45 s] about thirty yuan a month": the pause is the
silence between the words, the voice's own lead and tail trimmed); some are said over a
prompt that is still playing (barge-in, BARGE_AFTER_S into it).

What is measured, all on the caller's own media timeline (no clock skew):

  turn latency  from the last speech sample the caller sent to the first sample of the
                robot's reply in the caller's recording (energy, 5 ms windows, over -45 dBFS)
  barge-in      from the caller's speech onset to the end of the prompt's audio in the
                recording (the prompt's last loud window before a quiet run of 0.6 s)
  cut in        answers the robot began to reply to before the caller had finished (the
                turn ended inside the answer's pause): a harm of ending turns early, never
                counted as a latency

How the timeline works. The caller's conference port is one pjmedia port that is both the
call's only source and its only sink: on every 20 ms tick of the caller's conference clock
pjmedia asks it for the frame to send (`onFrameRequested`) and gives it the frame it
received (`onFrameReceived`). Sent frame k leaves in tick k's RTP packet; received frame k
is what the caller's jitter buffer released in tick k. So sample n of the sent track and
sample n of the heard track share a clock. Error of the method: the heard track lags the
wire by the caller's own jitter buffer (kept at its minimum, 1 frame, `--caller-jb-frames`;
its measured average delay is printed, and the 'on the wire' column subtracts it), and the
order of get and put within a tick is pjmedia's, so +-20 ms. Energy edges: +-5 ms.

Where the time goes (table 4): each turn is also placed on the wall clock (the caller
notes time.time() at every tick) and matched to the daemon's `turn` event (its `ts`, ms, the
same machine's clock) and `prompt.played` (`first_audio_ms`): caller's end -> turn event
(jitter buffer + 40 ms chunks + VAD silence + ASR + emotion + rules) and turn event ->
reply on the wire (prompt lookup, player start, RTP). An offline replay of the callers' own
audio through the daemon's recogniser (`UtteranceRecognizer` with the config's VAD, fed in
the daemon's 40 ms chunks of a talking caller) splits the first part into the endpointer's
wait (audio time) and the work done on the chunk that ends the turn (decoding and the turn
model).

The bench's copy of the config takes as many calls at once as its levels need
(sip.max_concurrent_calls, up to MAX_LEVEL callers per language). The machine is
shared: the table shows its cores and 1-minute load per level.

Run from the repository root:
  .venv/bin/python -m tests.bench.bench_turns [--languages en,zh] [--levels 1,4]
      [--calls 6] [--voice device|espeak] [--set models.vad.min_silence_ms=300 ...]
      [--keep DIR]
`--set` changes the bench's copy of config.yaml (dotted path = YAML value), to explore.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import select
import shutil
import statistics
import sys
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.percentiles import fmt
from tests.harness.sip_peer import PeerProcess

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
FRAME = 320  # samples per 20 ms tick
WIN = 80  # 5 ms energy windows
LOUD_DB = -45.0  # a 5 ms window above this (dBFS) is speech
LIVE_LOUD_DB = -40.0  # the caller's ear, live, per 20 ms frame
QUIET_S = 0.8  # a prompt has ended after this much quiet (the caller's cue to answer)
BARGE_QUIET_S = 0.6  # the cut prompt's end: its last loud window before this much quiet
REPLY_TIMEOUT_S = 10.0
OPENING_TIMEOUT_S = 25.0


# ======================================================================================
# The caller process: a PJSUA2 user agent that speaks on cue and records both directions
# ======================================================================================


def _emit(**ev: Any) -> None:
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def _read_pcm(path: str) -> bytes:
    with wave.open(path) as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: need 16 kHz mono 16-bit")
        data = w.readframes(w.getnframes())
    pad = (-len(data)) % (2 * FRAME)
    return data + b"\0" * pad


def peer_main(argv: list[str]) -> None:  # noqa: C901 - one small UA in one function
    import pjsua2 as pj

    from edgecall.telephony.media import vector_bytes

    ap = argparse.ArgumentParser()
    ap.add_argument("--registrar", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--codecs", default="G722,PCMA,PCMU")
    ap.add_argument("--jb-frames", type=int, default=1)
    opts = ap.parse_args(argv)
    domain = opts.registrar.split(":", 1)[1].split(";")[0]

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    cfg.logConfig.level = 2
    cfg.logConfig.consoleLevel = 2
    med = cfg.medConfig
    med.clockRate = med.sndClockRate = RATE
    med.channelCount = 1
    med.audioFramePtime = med.ptime = 20
    med.noVad = True
    med.ecTailLen = 0
    med.quality = 4
    med.jbInit = med.jbMinPre = opts.jb_frames
    ep.libInit(cfg)
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, pj.TransportConfig())
    ep.libStart()
    ep.audDevManager().setNullDev()
    wanted = [c.upper() for c in opts.codecs.split(",")]
    for info in ep.codecEnum2():
        name = info.codecId.split("/")[0].upper()
        ep.codecSetPriority(info.codecId, 250 - wanted.index(name) if name in wanted else 0)

    silence = b"\0" * (2 * FRAME)
    audio_type = pj.PJMEDIA_FRAME_TYPE_AUDIO

    class Ear(pj.AudioMediaPort):
        """The call's only source and sink: one sent and one heard frame per tick."""

        def __init__(self) -> None:
            super().__init__()
            self.sent: list[bytes] = []
            self.heard: list[bytes] = []
            self.times: list[float] = []  # wall clock of each received tick
            self.loud: list[bool] = []  # heard frame above LIVE_LOUD_DB
            self.outbox: collections.deque[tuple[bytes, int | None]] = collections.deque()
            self.marks: list[tuple[int, int]] = []  # (item, tick of its first frame)
            self.threshold = (10 ** (LIVE_LOUD_DB / 20) * 32768) ** 2

        def onFrameRequested(self, frame: Any) -> None:  # noqa: N802 - pjsua2 API
            data, mark = self.outbox.popleft() if self.outbox else (silence, None)
            if mark is not None:
                self.marks.append((mark, len(self.sent)))
            self.sent.append(data)
            frame.type = audio_type
            frame.buf = pj.ByteVector(data)
            frame.size = len(data)

        def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2 API
            self.times.append(time.time())
            data = vector_bytes(frame.buf) if frame.type == audio_type else b""
            data = (data + silence)[: 2 * FRAME]
            self.heard.append(data)
            x = np.frombuffer(data, dtype="<i2").astype(np.float32)
            self.loud.append(float(np.dot(x, x)) / FRAME >= self.threshold)

        def say(self, item: int, pcm: bytes) -> None:
            n = 2 * FRAME
            for k in range(0, len(pcm), n):
                self.outbox.append((pcm[k : k + n], item if k == 0 else None))

    calls: dict[int, Any] = {}
    counter = iter(range(1, 10_000))

    class Scripted(pj.Call):
        """One call: wait for each cue, say each item, then hang up; record everything."""

        def __init__(self, acc: Any, script: list[dict[str, Any]], out: str) -> None:
            super().__init__(acc)
            self.n = next(counter)
            self.script, self.out = script, out
            self.pcm = [_read_pcm(item["wav"]) for item in script]
            self.ear: Ear | None = None
            self.aud: Any = None
            self.item = 0
            self.phase = "wait_start"  # wait_start, wait_end, think, barge_wait, speaking, final
            self.since = time.monotonic()
            self.since_tick = 0
            self.onset_tick: int | None = None
            self.missed: list[int] = []
            self.disconnected = False
            self.saved = False
            self.jb: dict[str, float] = {}
            calls[self.n] = self

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            ci = self.getInfo()
            names = {pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED"}
            names[pj.PJSIP_INV_STATE_DISCONNECTED] = "DISCONNECTED"
            _emit(
                event="state",
                id=self.n,
                state=names.get(ci.state, str(ci.state)),
                code=ci.lastStatusCode,
                reason=ci.lastReason,
            )
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected = True

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                    continue
                if self.aud is not None:
                    return
                self.aud = self.getAudioMedia(mi.index)
                self.media_index = mi.index
                ear = Ear()
                fmt = pj.MediaFormatAudio()
                fmt.type = pj.PJMEDIA_TYPE_AUDIO
                fmt.clockRate, fmt.channelCount, fmt.bitsPerSample = RATE, 1, 16
                fmt.frameTimeUsec = 20000
                ear.createPort(f"ear-{self.n}", fmt)
                self.aud.startTransmit(ear)
                ear.startTransmit(self.aud)
                self.ear = ear
                self.since = time.monotonic()
                si = self.getStreamInfo(mi.index)
                _emit(event="media", id=self.n, codec=si.codecName)

        # -- the script, stepped by the main loop every ~10 ms --------------------------

        def _goto(self, phase: str) -> None:
            self.phase, self.since = phase, time.monotonic()
            self.since_tick = len(self.ear.loud) if self.ear else 0

        def _loud_since(self, tick: int) -> int | None:
            loud = self.ear.loud
            for k in range(tick, len(loud)):
                if loud[k]:
                    return k
            return None

        def _quiet_for(self) -> float:
            loud = self.ear.loud
            k = len(loud) - 1
            while k >= self.since_tick and not loud[k]:
                k -= 1
            return (len(loud) - 1 - k) * 0.02

        def _speak(self) -> None:
            self.ear.say(self.item, self.pcm[self.item])
            _emit(event="speaking", id=self.n, item=self.item)
            self._goto("speaking")

        def step(self) -> None:
            if self.ear is None or self.disconnected:
                return
            if len(self.ear.loud) // 50 != getattr(self, "_jb_second", -1):
                self._jb_second = len(self.ear.loud) // 50
                self._keep_jb()  # each second: the last reading survives a remote hang-up
            waited = time.monotonic() - self.since
            done = self.item >= len(self.script)
            spec = self.script[self.item] if not done else {}
            if self.phase == "wait_start":
                limit = OPENING_TIMEOUT_S if self.item == 0 else REPLY_TIMEOUT_S
                onset = self._loud_since(self.since_tick)
                if onset is not None:
                    self.onset_tick = onset
                    barge = not done and spec.get("mode") == "barge"
                    self._goto("barge_wait" if barge else "wait_end")
                elif waited > limit:
                    self.missed.append(self.item)
                    if done:
                        self.hang_up()
                    else:
                        self._goto("think")
            elif self.phase == "wait_end":
                if self._quiet_for() >= QUIET_S or waited > 60:
                    if done:
                        self.hang_up()
                    else:
                        self._goto("think")
            elif self.phase == "think":
                if waited >= spec.get("think_s", 0.4):
                    self._speak()
            elif self.phase == "barge_wait":
                assert self.onset_tick is not None
                into = (len(self.ear.loud) - self.onset_tick) * 0.02
                if into >= spec.get("barge_after_s", 1.0):
                    self._speak()
            elif self.phase == "speaking" and not self.ear.outbox:
                self.item += 1
                self._goto("wait_start")

        def hang_up(self) -> None:
            self.phase = "final"
            self._keep_jb()
            with contextlib.suppress(pj.Error):
                self.hangup(pj.CallOpParam(True))

        def _keep_jb(self) -> None:
            with contextlib.suppress(pj.Error, AttributeError):
                jb = self.getStreamStat(self.media_index).jbuf
                self.jb = {
                    "avg_ms": jb.avgDelayMsec,
                    "min_ms": jb.minDelayMsec,
                    "max_ms": jb.maxDelayMsec,
                    "prefetch": jb.prefetch,
                }

        def save(self) -> None:
            if self.saved:
                return
            self.saved = True
            ear = self.ear
            if ear is None:
                _emit(event="recorded", id=self.n, path=None, missed=self.missed)
                return
            n = min(len(ear.sent), len(ear.heard), len(ear.times))
            np.savez(
                self.out,
                sent=np.frombuffer(b"".join(ear.sent[:n]), dtype="<i2"),
                heard=np.frombuffer(b"".join(ear.heard[:n]), dtype="<i2"),
                times=np.array(ear.times[:n]),
                marks=np.array(ear.marks, dtype=np.int64).reshape(-1, 2),
            )
            _emit(
                event="recorded",
                id=self.n,
                path=self.out,
                missed=self.missed,
                jb=self.jb,
                ticks=[len(ear.sent), len(ear.heard)],
            )

    class Account(pj.Account):
        def onRegState(self, prm: Any) -> None:  # noqa: N802
            _emit(event="reg", code=prm.code)

        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
            call = pj.Call(self, prm.callId)
            op = pj.CallOpParam()
            op.statusCode = 486
            call.hangup(op)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{opts.user}@{domain}"
    acfg.regConfig.registrarUri = opts.registrar
    acfg.regConfig.timeoutSec = 60
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", opts.user, 0, opts.password))
    acfg.mediaConfig.transportConfig.port = opts.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 200
    acc = Account()
    acc.create(acfg)

    def handle(cmd: dict[str, Any]) -> bool:
        name = cmd.get("cmd")
        if name == "quit":
            return False
        if name == "call":
            c = Scripted(acc, cmd["script"], cmd["out"])
            op = pj.CallOpParam(True)
            for hname, value in (cmd.get("headers") or {}).items():
                h = pj.SipHeader()
                h.hName, h.hValue = hname, str(value)
                op.txOption.headers.append(h)
            target = cmd["to"] if cmd["to"].startswith("sip:") else f"sip:{cmd['to']}@{domain}"
            c.makeCall(target, op)
            _emit(event="calling", id=c.n, t=time.time())
        elif name == "hangup":
            for c in list(calls.values()):
                if not c.disconnected:
                    c.hang_up()
        else:
            _emit(event="error", msg=f"unknown command {cmd}")
        return True

    _emit(event="ready", pid=os.getpid())
    running, buf = True, ""
    while running:
        ep.libHandleEvents(5)
        for c in list(calls.values()):
            try:
                c.step()
            except pj.Error as exc:
                _emit(event="error", msg=exc.info())
            if c.disconnected:
                c.save()
                calls.pop(c.n, None)
        if select.select([sys.stdin], [], [], 0)[0]:
            chunk = os.read(sys.stdin.fileno(), 65536).decode()
            if not chunk:
                break
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                if line.strip():
                    try:
                        running = handle(json.loads(line)) and running
                    except (pj.Error, KeyError, ValueError) as exc:
                        msg = exc.info() if isinstance(exc, pj.Error) else repr(exc)
                        _emit(event="error", msg=msg)
    ep.hangupAllCalls()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        ep.libHandleEvents(10)
    for c in list(calls.values()):
        c.save()
    calls.clear()
    acc.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


# ======================================================================================
# The bench side
# ======================================================================================


def ear_peer(
    registrar: str, user: str, password: str, rtp_port: int, log: Path, jb: int
) -> PeerProcess:
    """One caller process (`--peer`, above), driven like the harness's SIP peers."""
    command = [sys.executable, "-m", "tests.bench.bench_turns", "--peer"]
    command += ["--registrar", registrar, "--user", user, "--password", password]
    command += ["--rtp-port", str(rtp_port), "--jb-frames", str(jb)]
    return PeerProcess(command, user, log)


# --- what the callers say ------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    parts: tuple[str, ...]
    pauses: tuple[float, ...] = ()  # silence between the parts, s

    @property
    def text(self) -> str:
        return " ... ".join(self.parts)


LINES: dict[str, dict[str, Line]] = {
    "en": {
        "who": Line(("Sorry, who is calling?",)),
        "price": Line(("How much is it?",)),
        "contract": Line(("Does it have a contract?",)),
        "coverage": Line(("What about the coverage in my area?",)),
        "meeting": Line(("Sorry, I'm in a meeting right now.",)),
        "interested": Line(("Yes, I'm interested. Tell me more.",)),
        "data_um": Line(("I would like to know about, um,", "the data allowance."), (0.7,)),
        "price_pause": Line(("My current plan costs", "about thirty yuan a month."), (0.45,)),
    },
    "zh": {
        "who": Line(("你好，请问你是哪位？",)),
        "price": Line(("多少钱？",)),
        "contract": Line(("有没有合约期？",)),
        "data": Line(("流量有多少？",)),
        "meeting": Line(("我在开会。",)),
        "interested": Line(("好的，我有兴趣，你再详细说说。",)),
        "price_um": Line(("我想问一下，嗯，", "这个套餐每个月多少钱？"), (0.7,)),
        "plan_pause": Line(("我现在的套餐", "每个月三十块钱。"), (0.45,)),
    },
}
# One call's answers, in order: (line, mode); "barge" starts BARGE_AFTER_S into a prompt.
SCRIPTS: dict[str, list[list[tuple[str, str]]]] = {
    "en": [
        [("who", "turn"), ("price", "turn"), ("data_um", "turn"), ("coverage", "turn")],
        [("who", "barge"), ("contract", "turn"), ("price_pause", "turn"), ("meeting", "turn")],
        [("price", "turn"), ("coverage", "barge"), ("contract", "turn"), ("interested", "turn")],
    ],
    "zh": [
        [("who", "turn"), ("price", "turn"), ("price_um", "turn"), ("data", "turn")],
        [("who", "barge"), ("contract", "turn"), ("plan_pause", "turn"), ("meeting", "turn")],
        [("price", "turn"), ("data", "barge"), ("contract", "turn"), ("interested", "turn")],
    ],
}
BARGE_AFTER_S = 1.2
CAMPAIGNS = {"en": "retail-en", "zh": "retail-zh"}
APPLIANCE = "1001"
AGENT = "1003"  # never registered: a transfer fails and the call goes on
MAX_LEVEL = 8
CALLERS = {
    lang: [f"10{k}{i}" for i in range(1, MAX_LEVEL + 1)] for lang, k in (("en", 1), ("zh", 2))
}


def synthesize(lines: dict[str, Line], language: str, voice: str, config: Path, out: Path):
    """Each line as one 16 kHz WAV: its parts said by the voice, the pauses between."""
    from tests.harness.audio import make_wav, say_wav
    from tests.harness.lab import ESPEAK_VOICES

    out.mkdir(parents=True, exist_ok=True)
    wavs: dict[str, Path] = {}
    for key, line in lines.items():
        pieces = []
        for i, text in enumerate(line.parts):
            part = out / f"{language}-{key}-{i}.wav"
            if voice == "espeak":
                make_wav(part, text, voice=ESPEAK_VOICES[language])
            else:
                say_wav(part, text, language, config)
            pcm = read_wav(part)
            if line.pauses:  # the pause is the silence between the words, not the voice's
                first, last = speech_bounds(pcm)
                keep = RATE // 50  # 20 ms
                pcm = pcm[
                    max(first - keep, 0) if i else 0 : last + keep if i < len(line.pauses) else None
                ]
            pieces.append(pcm)
            if i < len(line.pauses):
                pieces.append(np.zeros(int(line.pauses[i] * RATE), np.int16))
        wavs[key] = write_wav(out / f"{language}-{key}.wav", np.concatenate(pieces))
    return wavs


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


# --- finding speech in a track ---------------------------------------------------------


def loud_windows(pcm: np.ndarray) -> np.ndarray:
    """One bool per 5 ms window: louder than LOUD_DB."""
    n = pcm.size // WIN
    x = pcm[: n * WIN].astype(np.float32).reshape(n, WIN) / 32768.0
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12) > LOUD_DB


def speech_bounds(pcm: np.ndarray) -> tuple[int, int]:
    """First and one-past-last sample of speech (5 ms windows)."""
    loud = np.flatnonzero(loud_windows(pcm))
    return int(loud[0]) * WIN, (int(loud[-1]) + 1) * WIN


@dataclass
class Turn:
    language: str
    calls: int  # level
    user: str
    line: str
    mode: str
    end_wall: float  # the caller's last speech sample, wall clock
    latency: float | None = None  # s, to the first reply sample heard
    cut_in: bool = False  # the robot replied before the caller had finished
    barge: float | None = None  # s, from the caller's onset to the end of the cut prompt
    barge_ended: str | None = None  # how the daemon says the prompt talked over ended
    start_wall: float = 0.0  # the caller's first speech sample, wall clock
    to_turn: float | None = None  # s, caller's end -> the daemon's turn event
    turn_to_reply: float | None = None  # s, turn event -> reply heard
    first_audio_ms: float | None = None
    utterance: str = ""
    onset_wall: float | None = None


def first_run(loud: np.ndarray, start: int, stop: int, value: bool, length: int) -> int | None:
    """First index in [start, stop) that begins a run of `length` windows equal to value."""
    run = 0
    for k in range(max(start, 0), min(stop, loud.size)):
        run = run + 1 if bool(loud[k]) == value else 0
        if run >= length:
            return k - length + 1
    return None


def analyse_call(rec: dict[str, Any], script: list[dict[str, Any]], user: str, lv: Level):
    """The turns of one recorded call (see the module docstring for each measure)."""
    heard, times, marks = rec["heard"], rec["times"], rec["marks"]
    loud = loud_windows(heard)
    per_tick = FRAME // WIN
    starts = sorted((int(tick), int(item)) for item, tick in marks)
    out = []
    for j, (tick, item) in enumerate(starts):
        spec = script[item]
        first, last = speech_bounds(read_wav(Path(spec["wav"])))
        s0, s1 = tick * FRAME + first, tick * FRAME + last
        w0, w1 = s0 // WIN, s1 // WIN
        bound = starts[j + 1][0] * per_tick if j + 1 < len(starts) else loud.size
        end_wall = float(times[min(s1 // FRAME, times.size - 1)]) + (s1 % FRAME) / RATE
        turn = Turn(lv.language, lv.calls, user, spec["line"], spec["mode"], end_wall)
        turn.start_wall = float(times[min(s0 // FRAME, times.size - 1)]) + (s0 % FRAME) / RATE
        scan_from = w0
        playing = bool(loud[max(w0 - 80, 0) : w0 + 1].any())  # a prompt in the last 0.4 s
        if playing:
            # the end of the prompt the caller talks over: its last loud window before a
            # quiet run (the daemon's prompt.played says whether barge-in cut it)
            quiet = first_run(loud, w0, bound, False, int(BARGE_QUIET_S * 1000 / 5))
            if quiet is not None:
                turn.barge = (quiet - w0) * WIN / RATE
                scan_from = quiet
        # a reply that starts (quiet run of 0.3 s, then speech) before the caller's end
        gap = first_run(loud, scan_from, w1, False, 60)
        if gap is not None and first_run(loud, gap, w1, True, 2) is not None:
            turn.cut_in = True
        elif bool(loud[max(w1 - 1, 0) : w1 + 1].any()) and not playing:
            turn.cut_in = True  # the robot is speaking as the caller ends
        if not turn.cut_in:
            onset = first_run(loud, max(w1, scan_from), bound, True, 2)
            limit = w1 + int(REPLY_TIMEOUT_S * 1000 / 5)
            if onset is not None and onset < limit:
                turn.latency = (onset - w1) * WIN / RATE
                k = onset * WIN // FRAME
                turn.onset_wall = float(times[min(k, times.size - 1)])
        out.append(turn)
    return out


# --- the lab ---------------------------------------------------------------------------


def write_config(
    tmp: Path, kamailio: Any, broker: Any, rtp: int, sets: list[str], calls: int
) -> Path:
    """The shipped config.yaml pointed at the bench's peers (the lab's helper, as the e2e
    tests use it), every prompt spoken by the on-device voices; the zh callers get
    retail-zh, the others retail-en; room for `calls`, then the `--set` changes."""

    from tests.harness.lab import write_appliance_config

    zh_users = "|".join(CALLERS["zh"])
    path = write_appliance_config(
        tmp,
        kamailio=kamailio,
        broker=broker,
        prompt_wavs={},
        rtp_base=rtp,
        campaign="retail-en",
        sets=[f"sip.max_concurrent_calls={calls}", *sets],
        sip={
            "agent_target": AGENT,
            "auto_answer": [
                {"match_from": f"sip:({zh_users})@", "campaign": "retail-zh", "language": "zh"},
                {"match_from": ".*", "campaign": "retail-en", "language": "en"},
            ],
        },
    )
    return path


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} cores ({model}), load average {load}"


@dataclass
class Level:
    language: str
    calls: int
    load: float
    turns: list[Turn] = field(default_factory=list)
    jb_ms: list[float] = field(default_factory=list)
    missing_recordings: int = 0
    ticks_mismatch: int = 0


async def one_call(
    peer: PeerProcess, script: list[dict[str, Any]], out: Path, office: Any, lv: Level, delay: float
) -> None:
    await asyncio.sleep(delay)
    peer.send(
        cmd="call", to=APPLIANCE, script=script, out=str(out), headers={"X-Signal-Strength": "-85"}
    )
    limit = 60 + 25 * len(script)
    try:
        ev = await peer.wait("recorded", timeout=limit)
    except TimeoutError:
        peer.send(cmd="hangup")
        ev = await peer.wait("recorded", timeout=20)
    if not ev.get("path"):
        lv.missing_recordings += 1
        states = [e for e in peer.seen if e["event"] in ("state", "error")][-3:]
        print(f"{peer.user}: call not recorded: {states}", file=sys.stderr)
        return
    sent, heard = ev.get("ticks", [0, 0])
    lv.ticks_mismatch = max(lv.ticks_mismatch, abs(sent - heard))
    if ev.get("jb"):
        lv.jb_ms.append(float(ev["jb"]["avg_ms"]))
    with np.load(out) as rec:
        lv.turns.extend(analyse_call(dict(rec), script, peer.user, lv))


def scripts_for(language: str, wavs: dict[str, Path], count: int, rng: random.Random):
    made = []
    for i in range(count):
        plan = SCRIPTS[language][i % len(SCRIPTS[language])]
        made.append(
            [
                {
                    "line": key,
                    "mode": mode,
                    "wav": str(wavs[key]),
                    "think_s": round(rng.uniform(0.3, 0.7), 2),
                    "barge_after_s": BARGE_AFTER_S,
                }
                for key, mode in plan
            ]
        )
    return made


async def run_level(
    language: str, n: int, calls: int, ctx: dict[str, Any], rng: random.Random
) -> Level:
    lv = Level(language, n, os.getloadavg()[0])
    peers = ctx["peers"][language][:n]
    scripts = scripts_for(language, ctx["wavs"][language], calls, rng)
    first_message = len(ctx["office"].messages)
    queues: list[list[list[dict[str, Any]]]] = [scripts[k::n] for k in range(n)]

    async def caller(k: int) -> None:
        for c, script in enumerate(queues[k]):
            out = ctx["tmp"] / f"rec-{language}-{n}-{k}-{c}.npz"
            await one_call(peers[k], script, out, ctx["office"], lv, rng.uniform(0, 2) * (k > 0))
            await asyncio.sleep(1.0)

    await asyncio.gather(*(caller(k) for k in range(n)))
    await asyncio.sleep(2.0)
    match_events(lv, ctx["office"].messages[first_message:])
    return lv


def match_events(lv: Level, messages: list[tuple[str, dict[str, Any], bool]]) -> None:
    """Each answered turn's daemon `turn` event and its reply's `prompt.played`, among the
    events of the calls from the same caller."""
    caller = {
        b["call_id"]: b.get("remote") for _, b, _ in messages if b.get("type") == "call.started"
    }

    def of(kind: str, user: str) -> list[tuple[float, dict[str, Any]]]:
        return sorted(
            (parse_ts(b["ts"]), b)
            for _, b, _ in messages
            if b.get("type") == kind and "ts" in b and caller.get(b.get("call_id")) == user
        )

    taken: set[str] = set()
    for t in lv.turns:
        if t.barge is not None:  # the prompt the caller talked over: the first to end after
            ended = [b for ts, b in of("prompt.played", t.user) if ts >= t.start_wall]
            t.barge_ended = ended[0].get("ended") if ended else None
        if t.latency is None or t.onset_wall is None:
            continue
        # the turn event between the caller's end and the reply heard (clock ms, so -10 ms)
        for ts, body in of("turn", t.user):
            if body["message_id"] not in taken and t.end_wall - 0.01 <= ts <= t.onset_wall + 0.01:
                taken.add(body["message_id"])
                t.to_turn = ts - t.end_wall
                t.turn_to_reply = t.onset_wall - ts
                t.utterance = body.get("utterance", "")
                break
        # prompt.played is sent when the reply has ended: the first after the reply began
        for ts, body in of("prompt.played", t.user):
            if ts >= t.onset_wall and body.get("first_audio_ms") is not None:
                t.first_audio_ms = float(body["first_audio_ms"])
                break


# --- offline: the recogniser alone on the callers' audio --------------------------------


def offline_endpointer(config: Path, language: str, wavs: dict[str, Path]) -> list[dict[str, Any]]:
    """Each line through the daemon's own recogniser (this config's VAD and end-of-turn
    settings, the chunks calls.py sends while a caller talks): how long after the last
    speech sample the utterance comes out (audio time) and how long that chunk's call
    took (CPU)."""
    import yaml

    from edgecall.config.models import ModelsConfig
    from edgecall.inference.asr import UtteranceRecognizer
    from edgecall.inference.turn import TurnDetector

    models = ModelsConfig.model_validate(yaml.safe_load(config.read_text("utf-8"))["models"])
    asr = next(a for a in models.asr if language in a.languages)
    eot = models.vad.end_of_turn
    detector = TurnDetector(models.dir / eot.model) if eot.model is not None else None
    from edgecall.calls import FRAMES_PER_CHUNK_TALKING

    chunk = FRAMES_PER_CHUNK_TALKING * FRAME
    rows = []
    for key, wav in wavs.items():
        pcm = read_wav(wav)
        _, last = speech_bounds(pcm)
        lead = RATE
        audio = np.concatenate([np.zeros(lead, np.int16), pcm, np.zeros(3 * RATE, np.int16)])
        for phase in range(0, chunk, chunk // 4):  # where the chunk edges fall varies
            rec = UtteranceRecognizer.from_config(asr, models, language, turn_detector=detector)
            got: list[tuple[int, float, str]] = []  # (end of the chunk, its CPU time, text)
            lo = 0
            for hi in range(phase or chunk, audio.size + chunk, chunk):
                hi = min(hi, audio.size)
                t0 = time.perf_counter()
                for u in rec.accept(audio[lo:hi]):
                    got.append((hi, time.perf_counter() - t0, u.text))
                lo = hi
            if got:
                hi, spent, _ = got[-1]
                rows.append(
                    {
                        "line": key,
                        "wait_s": (hi - lead - last) / RATE,
                        "decode_s": spent,
                        "text": " / ".join(g[2] for g in got),
                        "pieces": len(got),
                        "early": getattr(rec._endpointer, "early", 0),
                        "held": rec._endpointer.held,
                    }
                )
    return rows


# --- the whole bench -------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> None:
    from tests.harness.lab import HeadOffice, Lab

    rng = random.Random(args.seed)
    languages = args.languages.split(",")
    levels = [int(x) for x in args.levels.split(",")]
    users = {APPLIANCE: "pw-1001"}
    for lang in languages:
        users.update({u: f"pw-{u}" for u in CALLERS[lang]})
    lab = Lab("bench-turns-", users)
    tmp = lab.tmp
    rtp = random.randrange(20000, 32600 - 200 * (2 * MAX_LEVEL + 2), 200)
    peers: dict[str, list[PeerProcess]] = {}
    before = machine()
    try:
        config = write_config(tmp, lab.kamailio, lab.broker, rtp, args.set, max(levels))
        wavs = {
            lang: synthesize(LINES[lang], lang, args.voice, config, tmp / "lines")
            for lang in languages
        }
        office = lab.office = HeadOffice(lab.broker.host, lab.broker.port)
        await office.start()
        await lab.start_daemon(config)
        k = 0
        for lang in languages:
            peers[lang] = []
            for user in CALLERS[lang][: max(levels)]:
                k += 1
                peer = ear_peer(
                    lab.kamailio.uri,
                    user,
                    users[user],
                    rtp + 200 * k,
                    tmp / f"peer-{user}.log",
                    args.caller_jb_frames,
                )
                peers[lang].append(peer)
                lab.peers.append(peer)
        for lang in languages:
            for peer in peers[lang]:
                await peer.wait("reg", where=lambda e: e["code"] == 200, timeout=20)
        ctx = {"peers": peers, "office": office, "wavs": wavs, "tmp": tmp}
        results = []
        for lang in languages:
            for n in levels:
                calls = max(args.calls, n)
                print(f"... {lang}: {n} simultaneous call(s), {calls} calls", file=sys.stderr)
                results.append(await run_level(lang, n, calls, ctx, rng))
        offline = {lang: offline_endpointer(config, lang, wavs[lang]) for lang in languages}
        report(results, offline, config, before, machine(), args)
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            with open(Path(args.keep) / "turns.json", "w") as fh:
                json.dump([t.__dict__ for lv in results for t in lv.turns], fh, indent=1)
    finally:
        if args.keep:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for f in [*tmp.glob("rec-*.npz"), *tmp.glob("*.log"), tmp / "config.yaml"]:
                with contextlib.suppress(OSError):
                    shutil.copy(f, keep)
            if lab.office is not None:
                with open(keep / "messages.json", "w") as fh:
                    json.dump([m[1] for m in lab.office.messages], fh)
        await lab.close()


# --- tables ----------------------------------------------------------------------------


TARGETS = {"en": (0.6, 1.0), "zh": (None, 1.5)}  # p50, p95 of the reply on the wire, s


def report(
    levels: list[Level],
    offline: dict[str, list[dict[str, Any]]],
    config: Path,
    before: str,
    after: str,
    args: argparse.Namespace,
) -> None:
    import yaml

    from edgecall.calls import FRAMES_PER_CHUNK_TALKING

    cfg = yaml.safe_load(config.read_text("utf-8"))
    vad = cfg["models"]["vad"]
    eot = vad.get("end_of_turn") or {}
    print(f"\nMachine: {before} at the start; {after} at the end.")
    print(
        f"Config: the shipped config.yaml{' with ' + ', '.join(args.set) if args.set else ''}; "
        f"VAD min_silence_ms {vad['min_silence_ms']}, end_of_turn model "
        f"{eot.get('model')}; sip.jitter_buffer_ms {cfg['sip']['jitter_buffer_ms']}; "
        f"barge_in_min_ms {cfg['sip']['barge_in_min_ms']}; max_concurrent_calls "
        f"{cfg['sip']['max_concurrent_calls']}; callers' voice: {args.voice}; "
        f"codec G.722."
    )

    print("\n### 1. Turn latency: caller's last speech sample -> first sample of the reply (s)\n")
    print(
        "| language | calls at once | answers | replied | cut in | no reply | p50 heard | "
        "p95 heard | max | p50 on the wire | p95 on the wire | target p50 / p95 | "
        "caller JB ms | load1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for lv in levels:
        lat = [t.latency for t in lv.turns if t.latency is not None]
        cut = sum(t.cut_in for t in lv.turns)
        none = sum(t.latency is None and not t.cut_in for t in lv.turns)
        jb = statistics.mean(lv.jb_ms) / 1000 if lv.jb_ms else 0.0
        p50, p95 = TARGETS[lv.language]
        target = f"{p50 or '-'} / {p95}"
        print(
            f"| {lv.language} | {lv.calls} | {len(lv.turns)} | {len(lat)} | {cut} | {none} | "
            f"{fmt(lat, 0.5)} | {fmt(lat, 0.95)} | {fmt(lat, 1.0)} | {fmt(lat, 0.5, jb)} | "
            f"{fmt(lat, 0.95, jb)} | {target} | {jb * 1000:.0f} | {lv.load:.2f} |"
        )
    print(
        "\n'cut in': the robot began its reply before the caller had finished (an answer "
        "with a pause inside, ended at the pause); not a latency. 'on the wire': heard minus "
        "the caller's mean jitter-buffer delay (pjmedia's own figure)."
    )

    print("\n### 2. Per answer (all levels): p50 / p95 heard (s), cut in / n\n")
    print("| language | answer | n | p50 | p95 | cut in |")
    print("|---|---|---|---|---|---|")
    for lang in dict.fromkeys(lv.language for lv in levels):
        ts = [t for lv in levels if lv.language == lang for t in lv.turns]
        for line in LINES[lang]:
            mine = [t for t in ts if t.line == line]
            lat = [t.latency for t in mine if t.latency is not None]
            if mine:
                print(
                    f"| {lang} | {LINES[lang][line].text} | {len(mine)} | {fmt(lat, 0.5)} | "
                    f"{fmt(lat, 0.95)} | {sum(t.cut_in for t in mine)} |"
                )

    print("\n### 3. Barge-in: caller's speech onset -> end of the prompt's audio heard (s)\n")
    print("| language | calls at once | barge-ins | cut by barge-in | p50 | p95 | max | target |")
    print("|---|---|---|---|---|---|---|---|")
    for lv in levels:
        said = [t for t in lv.turns if t.mode == "barge" and t.barge is not None]
        b = [t.barge for t in said]
        cut = sum(t.barge_ended == "barge_in" for t in said)
        n = sum(t.mode == "barge" for t in lv.turns)
        print(
            f"| {lv.language} | {lv.calls} | {len(b)} of {n} | {cut} | {fmt(b, 0.5)} | "
            f"{fmt(b, 0.95)} | {fmt(b, 1.0)} | 0.2 |"
        )
    print("\n| language | answer said over a prompt | n | p50 | max |")
    print("|---|---|---|---|---|")
    for lang in dict.fromkeys(lv.language for lv in levels):
        said = [t for lv in levels if lv.language == lang for t in lv.turns if t.barge]
        for line in dict.fromkeys(t.line for t in said):
            b = [t.barge for t in said if t.line == line and t.barge is not None]
            print(
                f"| {lang} | {LINES[lang][line].text} | {len(b)} | {fmt(b, 0.5)} | {fmt(b, 1.0)} |"
            )
    print(
        "\n'barge-ins': answers said while a prompt was playing (of those scripted so); 'cut "
        "by barge-in': the daemon's prompt.played says so."
    )

    print("\n### 4. Where the time goes (s; p50 / p95 over the replied answers)\n")
    print(
        "| language | calls at once | caller's end -> turn event | turn event -> reply heard | "
        "first_audio_ms (daemon) | matched |"
    )
    print("|---|---|---|---|---|---|")
    for lv in levels:
        a = [t.to_turn for t in lv.turns if t.to_turn is not None]
        b = [t.turn_to_reply for t in lv.turns if t.turn_to_reply is not None]
        f = [t.first_audio_ms / 1000 for t in lv.turns if t.first_audio_ms is not None]
        print(
            f"| {lv.language} | {lv.calls} | {fmt(a, 0.5)} / {fmt(a, 0.95)} | "
            f"{fmt(b, 0.5)} / {fmt(b, 0.95)} | {fmt(f, 0.5)} / {fmt(f, 0.95)} | "
            f"{len(a)} of {sum(t.latency is not None for t in lv.turns)} |"
        )
    print(
        "\nOffline, the recogniser alone on the same lines (this config's VAD, the daemon's "
        f"{FRAMES_PER_CHUNK_TALKING * 20} ms chunks at 4 phases): the endpointer's wait after "
        "the last speech sample (audio time: VAD lag, silence, chunk) and the time the chunk "
        "that returned the utterance took (decoding, "
        "the turn model, VAD; ~0 when the words were decoded at an earlier chunk):\n"
    )
    print(
        "| language | wait p50 | wait p95 | decode p50 | decode p95 | runs ending early | "
        "runs with a held pause | lines split |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for lang, rows in offline.items():
        w = [r["wait_s"] for r in rows]
        d = [r["decode_s"] for r in rows]
        split = sorted({r["line"] for r in rows if r["pieces"] > 1})
        early = sum(r["early"] > 0 for r in rows)
        held = sum(r["held"] > 0 for r in rows)
        print(
            f"| {lang} | {fmt(w, 0.5)} | {fmt(w, 0.95)} | {fmt(d, 0.5)} | {fmt(d, 0.95)} | "
            f"{early} of {len(rows)} | {held} of {len(rows)} | {', '.join(split) or 'none'} |"
        )
    for lv in levels:
        if lv.missing_recordings or lv.ticks_mismatch > 2:
            print(
                f"\n{lv.language} x{lv.calls}: {lv.missing_recordings} calls unrecorded, "
                f"sent/heard tick counts differ by up to {lv.ticks_mismatch}"
            )
    if args.verbose:
        print("\n| language | calls | answer | mode | latency | to turn | turn to reply | heard |")
        print("|---|---|---|---|---|---|---|---|")
        for lv in levels:
            for t in lv.turns:
                print(
                    f"| {t.language} | {t.calls} | {t.line} | {t.mode} | {t.latency} | "
                    f"{t.to_turn} | {t.turn_to_reply} | {t.utterance} |"
                )


def main() -> None:
    if sys.argv[1:2] == ["--peer"]:
        peer_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", default="en,zh")
    ap.add_argument("--levels", default="1,4", help=f"simultaneous calls (max {MAX_LEVEL})")
    ap.add_argument("--calls", type=int, default=6, help="calls per level and language")
    ap.add_argument("--voice", choices=["device", "espeak"], default="device")
    ap.add_argument("--caller-jb-frames", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="dotted.path=value in config")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--keep", help="keep recordings, daemon log and config here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    args = ap.parse_args()
    if any(not 1 <= int(n) <= MAX_LEVEL for n in args.levels.split(",")):
        ap.error(f"levels must be between 1 and {MAX_LEVEL}")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
