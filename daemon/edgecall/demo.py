"""`make demo`: the appliance answering real calls on this machine, in about a minute.

Starts a Kamailio PBX and a mosquitto broker on free loopback ports, the daemon
(`edgecall run`) with the shipped config.yaml pointed at them, and `edgecall tail`
to show what head office receives live. A simulated caller (its own PJSUA2
process, extension 1002) then makes two calls to the appliance (extension 1001):
an English dialogue synthesized with espeak-ng, which ends `completed`, and a call
whose trunk reports -125 dBm, which ends `poor_signal_hangup` with an SMS request.
The appliance speaks its prompts with its own on-device voice (Piper en_US-joe,
built by `make voices`), exactly as with the shipped config; the caller records
what it heard (kept for listening with --keep).
Everything started is stopped at the end, on failure and on Ctrl-C.

Runs from the checkout: it reuses the test harness (tests/harness). Exit status:
0 when both calls ended as expected, 1 when a step failed (what failed and the
relevant log tail are printed), 130 when interrupted.
`--replay [CONFIG]` instead replays tests/data/calls through the rule engine only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgecall.config.loader import ConfigError
from edgecall.replay import load_replay, run_replay
from edgecall.rules.session import Lexicons

if TYPE_CHECKING:
    from tests.harness.kamailio import Kamailio
    from tests.harness.lab import DaemonProcess, HeadOffice, NotifySocket
    from tests.harness.mosquitto import Mosquitto
    from tests.harness.sip_peer import SipPeer

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
TENDENCY = {-1: "negative", 0: "neutral", 1: "positive", None: "-"}
# Interest, the offer ("shall I go ahead?"), and the confirmation that makes it a sale.
DIALOGUE = [
    "Hello, what plan is it?",
    "Sounds good, I am interested. How much is it?",
    "Yes, go ahead.",
]
WEAK_SIGNAL_DBM = -125
# Generous for a loaded 2-core machine; a normal run takes about 20 s and 11 s per call.
CALL_TIMEOUT_S = 75
DAEMON_READY_S = 60
ECHO_WIDTH = 240  # tail lines are cut here on screen (the full messages are in the summary)


class StepFailed(Exception):
    """A demo step went wrong: what failed, and the logs that say why."""

    def __init__(self, title: str, error: BaseException | str, logs: dict[str, str]) -> None:
        super().__init__(title)
        self.title, self.error, self.logs = title, error, logs


@dataclass
class Lab:
    """What the demo started, so that it can all be stopped in reverse order."""

    workdir: Path
    kamailio: Kamailio | None = None
    broker: Mosquitto | None = None
    notify: NotifySocket | None = None
    daemon: DaemonProcess | None = None
    tail: subprocess.Popen[str] | None = None
    tail_lines: list[str] = field(default_factory=list)
    peer: SipPeer | None = None
    office: HeadOffice | None = None

    def log_paths(self) -> dict[str, Path]:
        paths = {
            "daemon": self.workdir / "daemon.log",
            "tail": self.workdir / "tail.log",
            "caller": self.workdir / "caller.log",
        }
        if self.kamailio is not None:
            paths["kamailio"] = self.kamailio.log_path
        if self.broker is not None:
            paths["mosquitto"] = self.broker.log_file
        return paths


def say(text: str = "") -> None:
    print(text, flush=True)


def log_tails(lab: Lab, names: tuple[str, ...], lines: int = 25) -> dict[str, str]:
    from tests.harness.lab import tail_lines

    paths = lab.log_paths()
    return {n: tail_lines(paths[n], lines) for n in names if n in paths}


@contextlib.contextmanager
def step(lab: Lab, title: str, *logs: str) -> Iterator[None]:
    """One visible step; any failure becomes StepFailed with the tails of `logs`."""
    say(f"==> {title}")
    started = time.monotonic()
    try:
        yield
    except (StepFailed, KeyboardInterrupt, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise StepFailed(title, exc, log_tails(lab, logs)) from exc
    say(f"    ok ({time.monotonic() - started:.1f} s)")


# --- starting and stopping ---------------------------------------------------------


def start_tail(lab: Lab, config: Path) -> None:
    """`edgecall tail` as a child; its lines are echoed indented, and kept for the checks."""
    with open(lab.workdir / "tail.log", "w") as err:
        from tests.harness.lab import die_with_parent

        lab.tail = subprocess.Popen(
            [sys.executable, "-m", "edgecall.cli", "tail", "--config", str(config), "--no-stats"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def echo() -> None:
        assert lab.tail is not None and lab.tail.stdout is not None
        for line in lab.tail.stdout:
            line = line.rstrip()
            lab.tail_lines.append(line)
            if " type=quality " not in line:  # one per 5 s per call: shown in the summary
                say(f"    | {line if len(line) <= ECHO_WIDTH else line[: ECHO_WIDTH - 1] + '…'}")

    threading.Thread(target=echo, daemon=True).start()


async def wait_tail_watching(lab: Lab, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    err = lab.workdir / "tail.log"
    while time.monotonic() < deadline:
        if "# watching" in err.read_text(errors="replace"):
            return
        assert lab.tail is not None
        if lab.tail.poll() is not None:
            raise RuntimeError(f"edgecall tail exited with status {lab.tail.returncode}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"edgecall tail did not subscribe within {timeout:.0f} s")


def stop_all(lab: Lab) -> list[str]:
    """Stop everything in reverse order of start; returns what could not be stopped cleanly."""
    problems: list[str] = []

    def attempt(what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # keep stopping the rest
            problems.append(f"{what}: {exc}")

    if lab.peer is not None:
        attempt("caller", lab.peer.close)
    if lab.daemon is not None:
        status = lab.daemon.stop()
        if status not in (0, None):
            problems.append(f"daemon exited with status {status}")
    if lab.tail is not None:
        tail = lab.tail

        def stop_tail() -> None:
            time.sleep(0.5)  # let it print the daemon's last status
            if tail.poll() is None:
                tail.send_signal(signal.SIGINT)
                try:
                    tail.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    tail.kill()
                    tail.wait(timeout=5)

        attempt("edgecall tail", stop_tail)
    if lab.notify is not None:
        attempt("notify socket", lab.notify.close)
    if lab.broker is not None:
        attempt("mosquitto", lab.broker.close)
    if lab.kamailio is not None:
        attempt("kamailio", lab.kamailio.cleanup)
    return problems


# --- the scenario ----------------------------------------------------------------


async def while_daemon_runs(lab: Lab, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, but fail at once (not at its timeout) if the daemon dies."""
    task = asyncio.ensure_future(awaitable)
    try:
        while not task.done():
            proc = lab.daemon.proc if lab.daemon else None
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with status {proc.returncode}")
            await asyncio.wait([task], timeout=0.2)
        return task.result()
    finally:
        task.cancel()


async def scenario(lab: Lab) -> list[dict[str, Any]]:
    """Start the lab, make the two calls; returns [(label, outcome, events)] for the summary."""
    from tests.harness.audio import make_wav
    from tests.harness.kamailio import Kamailio
    from tests.harness.lab import (
        APPLIANCE,
        CALLER,
        USERS,
        DaemonProcess,
        HeadOffice,
        NotifySocket,
        speech_then_silence,
        write_appliance_config,
    )
    from tests.harness.mosquitto import Mosquitto
    from tests.harness.sip_peer import SipPeer
    from tests.sip.sip_helpers import rtp_base

    work = lab.workdir
    with step(lab, "Synthesizing the caller's speech (espeak-ng, sox)"):
        dialogue = speech_then_silence(work / "dialogue.wav", DIALOGUE, gap_s=2.5)
        hello = make_wav(work / "hello.wav", "Hello? Hello? Can you hear me?")
        say("    the caller will say: " + " / ".join(DIALOGUE))
        say("    the appliance's prompts are spoken by its own voice, not prepared here")

    with step(lab, "Starting Kamailio (the PBX) on loopback", "kamailio"):
        lab.kamailio = Kamailio(dict(USERS))
        lab.kamailio.start()
        say(f"    {lab.kamailio.uri}, extensions {', '.join(USERS)}")

    with step(lab, "Starting mosquitto (head office's MQTT broker) on loopback", "mosquitto"):
        lab.broker = Mosquitto(work / "mosquitto")
        lab.broker.start()
        say(f"    {lab.broker.host}:{lab.broker.port}")

    with step(lab, "Writing the daemon's config (the shipped config.yaml, adapted)"):
        config = write_appliance_config(
            work,
            kamailio=lab.kamailio,
            broker=lab.broker,
            prompt_wavs={},
            rtp_base=rtp_base(),
            models={"acoustic_emotion": None},
        )
        say(f"    {config}")
        say(f"    extension {APPLIANCE}, English campaign retail-en, agent 1003")
        say("    models.acoustic_emotion: null - acoustic emotion is unreliable on synthesized")
        say("    speech, so emotion comes from the words (text model) in this demo")

    with step(lab, "Starting `edgecall tail` (what head office sees, live)", "tail"):
        say("    its lines are shown indented with '|'; per-second signal samples are hidden")
        start_tail(lab, config)
        await wait_tail_watching(lab)
        lab.office = HeadOffice(lab.broker.host, lab.broker.port)
        await lab.office.start()

    with step(lab, "Starting the daemon: edgecall run --config config.yaml", "daemon"):
        lab.notify = NotifySocket(work / "notify.sock")
        lab.daemon = DaemonProcess(config, lab.notify, work / "daemon.log")
        lab.daemon.start()
        await lab.daemon.ready(DAEMON_READY_S)
        await lab.office.wait_for(
            "status", lambda b: b.get("state") == "online" or b.get("raw") == "online", 30
        )
        say("    READY=1 told to systemd (NOTIFY_SOCKET); status online on MQTT")

    with step(lab, f"Starting the simulated caller (PJSUA2, extension {CALLER})", "caller"):
        lab.peer = SipPeer(
            lab.kamailio.uri,
            CALLER,
            USERS[CALLER],
            rtp_port=rtp_base(),
            log_path=work / "caller.log",
        )
        await lab.peer.wait("reg", timeout=20, where=lambda e: e["code"] == 200)

    results = []
    calls = (
        (
            "call 1: a caller interested in the 5G plan",
            {
                "play": str(dialogue),
                "play_delay": 6.0,
                "headers": {"X-Signal-Strength": "-85"},
                "record": str(work / "heard-call-1.wav"),
            },
            "completed",
        ),
        (
            f"call 2: the trunk reports {WEAK_SIGNAL_DBM} dBm (weak signal)",
            {
                "play": str(hello),
                "loop": True,
                "headers": {"X-Signal-Strength": str(WEAK_SIGNAL_DBM)},
                "record": str(work / "heard-call-2.wav"),
            },
            "poor_signal_hangup",
        ),
    )
    for label, options, expected in calls:
        with step(lab, f"{label}: 1002 calls 1001", "daemon", "caller"):
            before = len(lab.office.on("outcomes"))
            lab.peer.send(cmd="call", to=APPLIANCE, **options)
            outcome = await while_daemon_runs(
                lab,
                lab.office.wait_for(
                    "outcomes",
                    lambda b, n=before: b in lab.office.on("outcomes")[n:],
                    CALL_TIMEOUT_S,
                ),
            )
            if outcome["outcome"] == "poor_signal_hangup":
                with contextlib.suppress(TimeoutError):
                    await lab.office.wait_for("sms", timeout=5)
            lab.peer.send(cmd="hangup")  # in case the appliance left the line open
            with contextlib.suppress(TimeoutError):
                await lab.peer.wait("state", 5, where=lambda e: e["state"] == "DISCONNECTED")
            results.append(
                {
                    "label": label,
                    "outcome": outcome,
                    "events": lab.office.call_events(outcome["call_id"]),
                    "heard": options["record"],
                    "sms": [s for s in lab.office.on("sms") if s.get("to") == CALLER],
                }
            )
            if outcome["outcome"] != expected:
                raise RuntimeError(f"expected outcome {expected}, got {outcome['outcome']}")
        await asyncio.sleep(0.3)  # let the tail print the outcome before the next step
    return results


# --- output -------------------------------------------------------------------------


def summary(results: list[dict[str, Any]]) -> list[str]:
    lines = ["", "=== Summary: what head office received"]
    for r in results:
        o = r["outcome"]
        lines.append(f"{r['label']}")
        lines.append(f"  outcome: {o['outcome']}  (call {o['call_id']}, {o.get('turns', 0)} turns)")
        for e in r["events"]:
            if e.get("type") == "turn":
                emo, intent = e["emotion"], e["intent"]
                lines.append(f"  caller: {e['utterance'] or '(nothing heard)'}")
                lines.append(
                    f"    emotion {TENDENCY[emo['tendency']]} ({'+'.join(emo['sources'])}), "
                    f"intent {TENDENCY[intent['tendency']]}"
                )
                who = "robot" if e["reply"]["scripted"] else "agent"
                node = f" -> {e['reply']['node']}" if e["reply"].get("node") else ""
                lines.append(f"  {who} [{e['reply']['situation']}{node}]: {e['reply']['text']}")
            elif e.get("type") == "prompt.played":
                how = f"voice {e['voice']}" if e["source"] == "synthesized" else e["source"]
                cached = ", cached" if e["cached"] else ""
                lines.append(
                    f"  spoke [{e['situation']}] {e['duration_s']:.1f} s ({how}{cached}, "
                    f"{e['ended']}, first audio {e['first_audio_ms']} ms)"
                )
            elif e.get("type") == "poor_signal":
                lines.append(f"  signal window (dBm): {e.get('window')}")
        if o["outcome"] == "completed":
            lines.append(
                f"  sale {'confirmed by the caller' if o.get('agreed') else 'not confirmed'}, "
                f"final intent {TENDENCY[o.get('final_intent')]}, "
                f"final emotion {TENDENCY[o.get('final_emotion')]}"
            )
        if o.get("sms"):
            sent = "requested" if o["sms"].get("sent") else "NOT sent"
            lines.append(f"  SMS to the caller {sent} (route {o['sms'].get('route')})")
        for sms in r["sms"]:
            lines.append(f"  SMS text: {sms.get('text')}")
        lines.append(f"  what the caller heard: {r['heard']} (kept with --keep)")
    got = ", ".join(r["outcome"]["outcome"] for r in results)
    lines.append(f"{len(results)} calls, {len(results)} outcomes: {got}")
    return lines


def report_failure(failure: StepFailed) -> None:
    err = sys.stderr
    print(f"\nFAILED: {failure.title}\n  {type(failure.error).__name__}: {failure.error}", file=err)
    for name, text in failure.logs.items():
        print(f"\n--- last lines of the {name} log ---\n{text or '(empty)'}", file=err)
    err.flush()


# --- entry points ---------------------------------------------------------------------


def live_demo(keep: bool = False) -> int:
    if not (REPO / "tests" / "harness" / "lab.py").exists():
        print(
            "edgecall demo: run it from the source checkout (needs tests/harness)", file=sys.stderr
        )
        return 2
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    for tool in ("kamailio", "mosquitto", "espeak-ng", "sox"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            print(f"edgecall demo: {tool} is not installed; run `make deps`", file=sys.stderr)
            return 2
    began = time.monotonic()
    lab = Lab(Path(tempfile.mkdtemp(prefix="edgecall-demo-")))
    say("edgecall demo: a PBX, a broker, the appliance and a caller, all on 127.0.0.1")
    say(f"(work files in {lab.workdir}; Ctrl-C stops everything)\n")
    # SIGTERM behaves like Ctrl-C: asyncio.run cancels the scenario, then we clean up.
    previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    status, results, failure = 0, [], None
    try:
        results = asyncio.run(_run(lab))
    except StepFailed as exc:
        failure, status = exc, 1
    except KeyboardInterrupt:
        say("\ninterrupted")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        say("==> Stopping everything (daemon: SIGTERM, then tail, caller, broker, PBX)")
        problems = stop_all(lab)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    if failure is not None:
        report_failure(failure)
    for problem in problems:
        print(f"while stopping: {problem}", file=sys.stderr)
    if status == 0 and problems:
        status = 1
    if status == 0:
        for line in summary(results):
            say(line)
        shown = sum("OUTCOME" in line for line in lab.tail_lines)
        say(f"(edgecall tail showed {shown} outcomes; everything stopped; "
            f"{time.monotonic() - began:.0f} s in all)")  # fmt: skip
    if status == 1 or keep:  # a failure's logs are worth reading
        say(f"work files and logs kept in {lab.workdir}")
    else:
        shutil.rmtree(lab.workdir, ignore_errors=True)
    return status


async def _run(lab: Lab) -> list[dict[str, Any]]:
    try:
        return await scenario(lab)
    finally:
        if lab.office is not None:
            await lab.office.close()


def replay(config_path: Path) -> int:
    """The bundled example calls through the rule engine: turns, decisions, outcome."""
    from edgecall.cli import load_config

    calls = sorted((REPO / "tests" / "data" / "calls").glob("*.yaml"))
    try:
        cfg = load_config(config_path)
        replays = [(p, load_replay(p)) for p in calls]
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    lexicons = Lexicons(cfg)
    for path, call in replays:
        messages, _ = run_replay(call, cfg, call_id=path.stem, lexicons=lexicons)
        say(f"\n=== {path.name} ({call.direction}, {call.remote})")
        for m in messages:
            line = describe(m.body) if m.kind == "event" else None
            if line:
                say(line)
        keys = ("outcome", "scene", "delay_s", "due", "factor", "target", "sms")
        say(f"  => outcome: { {k: v for k, v in messages[-1].body.items() if k in keys} }")
    say(f"\n{len(replays)} calls replayed with {config_path}")
    return 0


def describe(event: dict) -> str | None:
    kind = event.get("type")
    if kind == "turn":
        e, i = event["emotion"], event["intent"]
        factor = f"  factor: {event['factor']['keyword']}" if event["factor"] else ""
        reply = event["reply"]
        who = f"robot [{reply['situation']}]" if reply["scripted"] else "agent (unscripted)"
        return (
            f"  caller: {event['utterance'] or '(nothing heard)'}\n"
            f"    emotion {TENDENCY[e['tendency']]} ({e['score']:+.2f}), "
            f"intent {TENDENCY[i['tendency']]} ({i['value']:.2f}){factor}\n"
            f"  {who}: {reply['text']}"
        )
    if kind == "prompt":
        return f"  robot [{event['situation']}]: {event['text']}"
    if kind in ("poor_signal", "transfer.requested", "sms.requested", "hangup"):
        detail = {k: v for k, v in event.items() if k in ("window", "target", "route", "by")}
        return f"  ** {kind} {detail}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecall.demo", description=__doc__)
    parser.add_argument(
        "--replay",
        nargs="?",
        const=REPO / "config.yaml",
        type=Path,
        metavar="CONFIG",
        help="only replay tests/data/calls through the rule engine (default config.yaml)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work files after success")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    return live_demo(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
