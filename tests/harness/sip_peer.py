"""A second SIP user agent (its own PJSUA2 process) acting as caller or callee in tests.

It registers with the test Kamailio, then follows JSON commands, one per line on
stdin, and reports JSON events, one per line on stdout:

  commands  {"cmd": "call", "to": "1001", "headers": {...}, "play": wav, "play_delay": s,
             "loop": bool, "record": wav}
            {"cmd": "mode", "mode": "answer|busy|ignore|decline", "play": wav,
             "record_dir": dir}                       how to treat incoming calls
            {"cmd": "info", "id": n, "headers": {...}}   INFO in the call (e.g. X-Signal-Strength)
            {"cmd": "reinvite", "id": n, "headers": {...}}
            {"cmd": "play", "id": n, "wav": path}      {"cmd": "dtmf", "id": n, "digits": "12"}
            {"cmd": "hangup", "id": n}                 {"cmd": "message", "to": uri, "text": s}
            {"cmd": "quit"}
  events    ready, reg, incoming, state, media, recorded, message, message_status,
            transfer_request, error - each with "event" and fields.

Options: --tx-drop-pct N drops N% of the RTP it sends (100 = a caller that sends no
RTP), which is how tests inject packet loss.

`SipPeer` (below) starts and drives such a process from a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.harness.kamailio import Kamailio

# --------------------------------------------------------------------------------------
# Test-side driver
# --------------------------------------------------------------------------------------


class PeerProcess:
    """A caller process speaking JSON lines both ways: send commands, await events. Every
    event gets "t_rx", the wall-clock time it reached this process, and is kept in
    `timeline` (benchmarks time calls by it)."""

    def __init__(self, command: list[str], user: str, log_path: Path | None = None) -> None:
        self.user = user
        self.timeline: list[dict[str, Any]] = []
        self._stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    ev = json.loads(line)
                    ev["t_rx"] = time.time()
                    self.timeline.append(ev)
                    self._events.put(ev)
        self._events.put({"event": "exited"})

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    async def wait(
        self,
        event: str,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Next event named `event` (matching `where`), from those not yet consumed. Several
        tasks may wait at once (one per call of a peer): each looks again at the events
        the others set aside."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.seen:
                if ev["event"] == event and (where is None or where(ev)):
                    self.seen.remove(ev)
                    return ev
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                continue
            if ev["event"] == "exited":
                raise RuntimeError(f"sip_peer {self.user} exited")
            if ev["event"] == event and (where is None or where(ev)):
                return ev
            self.seen.append(ev)
        raise TimeoutError(
            f"sip_peer {self.user}: no {event!r} event in {timeout}s "
            f"(saw {[e['event'] for e in self.seen][-10:]})"
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.send(cmd="quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()


class SipPeer(PeerProcess):
    """A running sip_peer process (this file, below): a caller or callee in tests."""

    def __init__(
        self,
        registrar: str,
        user: str,
        password: str,
        *,
        rtp_port: int,
        mode: str = "answer",
        tx_drop_pct: int = 0,
        codecs: str = "G722,PCMA,PCMU",
        register: bool = True,
        log_path: Path | None = None,
    ) -> None:
        args = [
            sys.executable,
            __file__,
            "--registrar",
            registrar,
            "--user",
            user,
            "--password",
            password,
            "--rtp-port",
            str(rtp_port),
            "--mode",
            mode,
            "--tx-drop-pct",
            str(tx_drop_pct),
            "--codecs",
            codecs,
        ]
        if not register:
            args.append("--no-register")
        super().__init__(args, user, log_path)


@contextlib.contextmanager
def sip_peers(kamailio: Kamailio, log_dir: Path) -> Iterator[Callable[..., SipPeer]]:
    """A factory of peers registered at `kamailio` (one log file each); all closed at exit."""
    # Imported here: this file also runs as the peer process, outside the tests package.
    from tests.sip.sip_helpers import rtp_base

    made: list[SipPeer] = []

    def start(user: str, **kw: Any) -> SipPeer:
        peer = SipPeer(
            kamailio.uri,
            user,
            kamailio.users[user],
            rtp_port=rtp_base(),
            log_path=log_dir / f"peer-{user}-{len(made)}.log",
            **kw,
        )
        made.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in made:
            peer.close()


# --------------------------------------------------------------------------------------
# The peer process itself
# --------------------------------------------------------------------------------------


def _emit(**ev: Any) -> None:
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def main() -> None:  # noqa: C901 - one small UA in one function keeps the harness readable
    import pjsua2 as pj

    ap = argparse.ArgumentParser()
    ap.add_argument("--registrar", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--mode", default="answer")
    ap.add_argument("--tx-drop-pct", type=int, default=0)
    ap.add_argument("--codecs", default="G722,PCMA,PCMU")
    ap.add_argument("--no-register", action="store_true")
    opts = ap.parse_args()
    domain = opts.registrar.split(":", 1)[1].split(";")[0]
    # The parent ends this process ("quit", then a kill). A Ctrl-C to the terminal's
    # process group (make demo) must not: a KeyboardInterrupt skips the cleanup below,
    # and pjsua2's ~Call then asserts (SIGABRT) in the interpreter's final collection.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    cfg.uaConfig.maxCalls = 32
    cfg.logConfig.level = 2
    cfg.logConfig.consoleLevel = 2
    cfg.medConfig.clockRate = 16000
    cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.quality = 4
    cfg.medConfig.txDropPct = opts.tx_drop_pct
    cfg.medConfig.jbInit = 10  # 200 ms: a loaded CI machine schedules media threads late
    cfg.medConfig.jbMinPre = 10
    ep.libInit(cfg)
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, pj.TransportConfig())
    ep.libStart()
    ep.audDevManager().setNullDev()
    wanted = [c.upper() for c in opts.codecs.split(",")]
    for info in ep.codecEnum2():
        name = info.codecId.split("/")[0].upper()
        ep.codecSetPriority(info.codecId, 250 - wanted.index(name) if name in wanted else 0)

    state = {"mode": opts.mode, "play": None, "record_dir": None}
    state_names = {
        getattr(pj, f"PJSIP_INV_STATE_{n}"): n
        for n in ("CALLING", "INCOMING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED")
    }
    calls: dict[int, Any] = {}
    later: list[tuple[float, Callable[[], None]]] = []
    counter = iter(range(1, 10_000))

    class PeerCall(pj.Call):
        def __init__(
            self,
            acc: Any,
            call_id: int = pj.PJSUA_INVALID_ID,
            *,
            play: str | None,
            play_delay: float = 0.0,
            record: str | None = None,
            loop: bool = False,
        ) -> None:
            super().__init__(acc, call_id)
            self.n = next(counter)
            self.play, self.play_delay, self.record = play, play_delay, record
            self.loop = loop
            self.player: Any = None
            self.recorder: Any = None
            self.aud: Any = None
            calls[self.n] = self

        def start_play(self, wav: str, loop: bool = False) -> None:
            if self.aud is None:
                return
            if self.player is not None:
                with contextlib.suppress(pj.Error):
                    self.player.stopTransmit(self.aud)
            self.player = pj.AudioMediaPlayer()
            self.player.createPlayer(wav, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
            self.player.startTransmit(self.aud)
            _emit(event="playing", id=self.n, wav=wav)

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            ci = self.getInfo()
            _emit(
                event="state",
                id=self.n,
                state=state_names.get(ci.state, "?"),
                code=ci.lastStatusCode,
                reason=ci.lastReason,
                call_id=ci.callIdString,
            )
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                # drop it now: a pjsua2 Call destroyed after its slot was reused would
                # hang up the new call in that slot
                self._finish()

        def _finish(self) -> None:
            self.player = None
            if self.recorder is not None:
                self.recorder = None  # closes the WAV file
                _emit(event="recorded", id=self.n, path=self.record)
            calls.pop(self.n, None)

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            ci = self.getInfo()
            for mi in ci.media:
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    first = self.aud is None
                    self.aud = self.getAudioMedia(mi.index)
                    if first:  # like a phone, always send RTP (silence when not playing)
                        self.silence = pj.ToneGenerator()
                        self.silence.createToneGenerator(16000, 1)
                        self.silence.startTransmit(self.aud)
                    if first and self.record:
                        self.recorder = pj.AudioMediaRecorder()
                        self.recorder.createRecorder(self.record)
                        self.aud.startTransmit(self.recorder)
                    if first and self.play:
                        wav = self.play
                        later.append(
                            (
                                time.monotonic() + self.play_delay,
                                lambda wav=wav: self.start_play(wav, self.loop),
                            )
                        )
                    si = self.getStreamInfo(mi.index)
                    _emit(
                        event="media", id=self.n, codec=si.codecName, remote_rtp=si.remoteRtpAddress
                    )

        def onCallTransferRequest(self, prm: Any) -> None:  # noqa: N802
            _emit(event="transfer_request", id=self.n, to=prm.dstUri)
            prm.newCall = PeerCall(acc, play=None)

        def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
            _emit(event="dtmf", id=self.n, digit=prm.digit)

    class PeerAccount(pj.Account):
        def onRegState(self, prm: Any) -> None:  # noqa: N802
            _emit(
                event="reg",
                code=prm.code,
                active=self.getInfo().regIsActive,
                expires=prm.expiration,
            )

        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802
            rec = None
            if state["record_dir"]:
                rec = str(Path(state["record_dir"]) / f"in-{time.monotonic_ns()}.wav")
            call = PeerCall(self, prm.callId, play=state["play"], record=rec)
            ci = call.getInfo()
            hdrs = {}
            for line in prm.rdata.wholeMsg.split("\r\n\r\n")[0].splitlines()[1:]:
                name, _, value = line.partition(":")
                hdrs[name.strip()] = value.strip()
            _emit(
                event="incoming",
                id=call.n,
                remote=ci.remoteUri,
                headers=hdrs,
                call_id=ci.callIdString,
            )
            op = pj.CallOpParam()
            op.statusCode = {"answer": 200, "busy": 486, "ignore": 180, "decline": 603}[
                state["mode"]
            ]
            if op.statusCode >= 300:
                call.hangup(op)
            else:
                call.answer(op)

        def onInstantMessage(self, prm: Any) -> None:  # noqa: N802
            _emit(event="message", frm=prm.fromUri, body=prm.msgBody, content_type=prm.contentType)

        def onInstantMessageStatus(self, prm: Any) -> None:  # noqa: N802
            _emit(event="message_status", code=prm.code, reason=prm.reason)

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{opts.user}@{domain}"
    if not opts.no_register:
        acfg.regConfig.registrarUri = opts.registrar
        acfg.regConfig.timeoutSec = 60
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", opts.user, 0, opts.password))
    acfg.mediaConfig.transportConfig.port = opts.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 200
    acc = PeerAccount()
    acc.create(acfg)
    buddies: list[Any] = []

    def target(to: str) -> str:
        return to if to.startswith("sip:") else f"sip:{to}@{domain}"

    def headers_of(spec: dict[str, str] | None) -> Any:
        op = pj.CallOpParam(True)
        for name, value in (spec or {}).items():
            h = pj.SipHeader()
            h.hName, h.hValue = name, str(value)
            op.txOption.headers.append(h)
        return op

    def handle(cmd: dict[str, Any]) -> bool:
        name = cmd.get("cmd")
        call = calls.get(cmd.get("id", -1))
        if name == "quit":
            return False
        if name == "call":
            c = PeerCall(
                acc,
                play=cmd.get("play"),
                play_delay=cmd.get("play_delay", 0.0),
                record=cmd.get("record"),
                loop=cmd.get("loop", False),
            )
            c.makeCall(target(cmd["to"]), headers_of(cmd.get("headers")))
            _emit(event="calling", id=c.n, call_id=c.getInfo().callIdString)
        elif name == "mode":
            state.update({k: cmd.get(k, state[k]) for k in ("mode", "play", "record_dir")})
        elif name in ("info", "reinvite") and call is not None:
            if name == "info":
                prm = pj.CallSendRequestParam()
                prm.method = "INFO"
                op = headers_of(cmd.get("headers"))  # keep alive: txOption is a view into it
                prm.txOption = op.txOption
                call.sendRequest(prm)
            else:
                call.reinvite(headers_of(cmd.get("headers")))
        elif name == "play" and call is not None:
            call.start_play(cmd["wav"])
        elif name == "dtmf" and call is not None:
            call.dialDtmf(cmd["digits"])
        elif name == "hangup":
            for c in [call] if call is not None else list(calls.values()):
                with contextlib.suppress(pj.Error):
                    c.hangup(pj.CallOpParam(True))
        elif name == "message":
            b = pj.Buddy()
            bc = pj.BuddyConfig()
            bc.uri, bc.subscribe = target(cmd["to"]), False
            b.create(acc, bc)
            mp = pj.SendInstantMessageParam()
            mp.content = cmd["text"]
            b.sendInstantMessage(mp)
            buddies.append(b)
        else:
            _emit(event="error", msg=f"unknown or misdirected command {cmd}")
        return True

    _emit(event="ready", pid=os.getpid())
    running = True
    buf = ""
    while running:
        ep.libHandleEvents(10)
        now = time.monotonic()
        due = [item for item in later if item[0] <= now]
        for item in due:
            later.remove(item)
            try:
                item[1]()
            except pj.Error as exc:
                _emit(event="error", msg=exc.info())
        due = item = None  # keep no call alive through a stale loop variable
        if select.select([sys.stdin], [], [], 0)[0]:
            chunk = os.read(sys.stdin.fileno(), 65536).decode()
            if not chunk:
                break
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                if not line.strip():
                    continue
                try:
                    running = handle(json.loads(line)) and running
                except (pj.Error, KeyError, json.JSONDecodeError) as exc:
                    msg = exc.info() if isinstance(exc, pj.Error) else repr(exc)
                    _emit(event="error", msg=msg)
    ep.hangupAllCalls()
    end = time.monotonic() + 1.0
    while calls and time.monotonic() < end:
        ep.libHandleEvents(10)
    calls.clear()
    buddies.clear()
    # every Call must go before the library: one held by a pending action in `later` (a
    # closure, in a reference cycle) otherwise dies in the interpreter's final collection,
    # after libDestroy, where pjsua2's ~Call asserts and the peer aborts at exit
    later.clear()
    gc.collect()
    acc.shutdown()
    ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


if __name__ == "__main__":
    main()
