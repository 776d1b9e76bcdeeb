"""The whole appliance on one machine: helpers shared by `make demo` and the e2e tests.

A lab is Kamailio and mosquitto on loopback (tests.harness), a config.yaml derived
from the shipped one and pointed at them, `edgecall run` as a child process that
reports to a NOTIFY_SOCKET we bind ourselves, and a head-office subscriber that
collects what the appliance publishes. Synthesized speech (espeak-ng + sox) stands
in for callers and for the recorded prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from edgecall.mqtt.topics import call_level
from tests.harness.audio import make_wav, say_wav
from tests.harness.kamailio import Kamailio
from tests.harness.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[2]
PREFIX = "edgecall/branch-01/edge-01"
APPLIANCE, CALLER, AGENT = "1001", "1002", "1003"
USERS = {APPLIANCE: "pw-1001", CALLER: "pw-1002", AGENT: "pw-1003"}
CAMPAIGN = "retail-en"


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if its parent dies (even by kill -9).

    Linux ties this to the thread that started the child: start from a long-lived thread.
    """
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def tail_lines(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


ESPEAK_VOICES = {"en": "en", "zh": "cmn"}  # espeak-ng's voice per campaign language


def render_prompts(directory: Path, campaign: str = CAMPAIGN) -> dict[str, Path]:
    """The campaign's prompts from the shipped config.yaml, recorded with espeak-ng in the
    campaign's language."""
    with open(REPO / "config.yaml", encoding="utf-8") as fh:
        script = yaml.safe_load(fh)["campaigns"][campaign]
    voice = ESPEAK_VOICES[script["language"]]
    directory.mkdir(parents=True, exist_ok=True)
    return {
        name: make_wav(directory / f"{name}.wav", p["text"], voice=voice)
        for name, p in script["prompts"].items()
    }


def recordings_then_silence(path: Path, recordings: Sequence[Path], gap_s: float) -> Path:
    """One WAV (16 kHz mono 16-bit, as the caller plays it) of each recording followed by
    `gap_s` of silence, long enough for the ASR endpoint to fire."""
    padded = []
    for i, recording in enumerate(recordings):
        padded.append(str(path.with_name(f"{path.stem}-{i}-pad.wav")))
        subprocess.run(
            ["sox", str(recording), "-r", "16000", "-c", "1", "-b", "16", padded[-1]]
            + ["pad", "0", str(gap_s)],
            check=True,
            capture_output=True,
        )
    subprocess.run(["sox", *padded, str(path)], check=True, capture_output=True)
    return path


def speech_then_silence(
    path: Path, lines: Sequence[str], gap_s: float = 1.8, voice: str = "espeak"
) -> Path:
    """A caller who says each line, then pauses long enough for the ASR endpoint. The voice
    is espeak-ng, or with `voice="device"` the box's own English voice (see `say_wav`)."""
    said = [
        (make_wav if voice == "espeak" else say_wav)(path.with_name(f"{path.stem}-{i}.wav"), line)
        for i, line in enumerate(lines)
    ]
    return recordings_then_silence(path, said, gap_s)


def write_appliance_config(
    directory: Path,
    *,
    kamailio: Kamailio,
    broker: Mosquitto,
    prompt_wavs: dict[str, Path],
    rtp_base: int,
    campaign: str = CAMPAIGN,
    sets: Sequence[str] = (),
    **changes: dict[str, Any],
) -> Path:
    """`directory/config.yaml`: the shipped config.yaml pointed at the lab (extension 1001 on
    loopback, agent 1003, every inbound call answered by `campaign` in its language, with
    `prompt_wavs` as its recordings), with the SIP password in `directory/sip-password` and
    state in `directory/state`; `changes` update whole sections, then each of `sets`
    ("dotted.path=YAML value", a benchmark's --set) one setting."""
    password_file = directory / "sip-password"
    password_file.write_text(kamailio.users[APPLIANCE])
    password_file.chmod(0o600)
    with open(REPO / "config.yaml", encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    cfg["sip"].update(
        registrar=kamailio.uri,
        extension=APPLIANCE,
        password={"file": str(password_file)},
        local_port=0,
        bind_address="127.0.0.1",
        register_expiry_s=60,
        register_retry_s=2,
        rtp_port_min=rtp_base,
        rtp_port_max=rtp_base + 199,
        agent_target=AGENT,
        codecs=["G722", "PCMU"],
    )
    language = cfg["campaigns"][campaign]["language"]
    cfg["sip"]["auto_answer"] = [{"answer": True, "campaign": campaign, "language": language}]
    cfg["mqtt"].update(host=broker.host, port=broker.port)
    # a test's caller hears the rules' reply: no turn tries another candidate at random
    cfg["rules"]["replies"]["explore"] = 0
    cfg["storage"]["state_dir"] = str(directory / "state")
    cfg["models"]["dir"] = str(REPO / "models")
    for name, wav in prompt_wavs.items():
        cfg["campaigns"][campaign]["prompts"][name]["wav"] = str(wav)
    for section, values in changes.items():
        cfg[section].update(values)
    for item in sets:
        dotted, _, value = item.partition("=")
        set_path(cfg, dotted, value)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def set_path(cfg: dict[str, Any], dotted: str, value: str) -> None:
    """cfg[a][b][c] = the YAML `value`, for dotted "a.b.c" (missing sections are made)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = yaml.safe_load(value)


class NotifySocket:
    """Receives sd_notify datagrams like systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def seen(self, key: str, value: str | None = None) -> bool:
        return any(key in m and (value is None or m[key] == value) for m in self.messages)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self._sock.close()


class DaemonProcess:
    """`edgecall run --config PATH` in its own session, logging to a file."""

    def __init__(self, config_path: Path, notify: NotifySocket, log_path: Path) -> None:
        self.config_path = config_path
        self.notify = notify
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.ignored_sigterm = False

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "EDGECALL_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgecall.cli", "run", "--config", str(self.config_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to whoever started us; it SIGTERMs us
                preexec_fn=die_with_parent,
            )

    async def ready(self, timeout: float = 60) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.notify.seen("READY", "1"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with status {self.proc.returncode}")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemon did not report READY=1 within {timeout:.0f} s")

    async def prompts_ready(self, timeout: float = 120) -> None:
        """Until the daemon has synthesized every fixed prompt once (its warm-up)."""
        deadline = time.monotonic() + timeout
        while "prompts ready" not in self.log(400):
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompts not ready in {timeout:.0f} s:\n{self.log(40)}")
            await asyncio.sleep(0.5)

    def log(self, lines: int = 40) -> str:
        return tail_lines(self.log_path, lines)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemon still running after {timeout:.0f} s:\n{self.log()}")

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM (the daemon ends calls and flushes its outbox), SIGKILL its group if stuck.

        A daemon that ignores SIGTERM first gets SIGUSR1, which writes every thread's stack
        to its log, so the reason is on record; `ignored_sigterm` is then True."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.ignored_sigterm = True
                proc.send_signal(signal.SIGUSR1)
                time.sleep(1)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # whatever the daemon left in its session (inference workers, if it was killed)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode


class HeadOffice:
    """Everything the appliance publishes under its prefix, as head office receives it."""

    def __init__(self, host: str, port: int, prefix: str = PREFIX) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, timeout: float = 10) -> None:
        self._task = asyncio.create_task(self._run())
        done, _ = await asyncio.wait(
            [self._task, asyncio.create_task(self._ready.wait())],
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._task in done:
            self._task.result()  # raises the connection error
        if not self._ready.is_set():
            raise TimeoutError(f"no MQTT subscription on {self.host}:{self.port} in {timeout} s")

    async def _run(self) -> None:
        async with aiomqtt.Client(self.host, self.port) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload.decode() if isinstance(message.payload, bytes) else ""
                try:
                    body = json.loads(payload) if payload.startswith("{") else {"raw": payload}
                except json.JSONDecodeError:
                    body = {"raw": payload}
                self.messages.append((str(message.topic), body, bool(message.retain)))

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [b for t, b, _ in self.messages if t == f"{self.prefix}/{suffix}"]

    def call_events(self, call_id: str) -> list[dict[str, Any]]:
        return self.on(f"calls/{call_level(call_id)}/events")

    def call_messages(self, call_id: str) -> list[dict[str, Any]]:
        """A call's events and its outcome, as head office files them."""
        outcome = [o for o in self.on("outcomes") if o.get("call_id") == call_id]
        return self.call_events(call_id) + outcome

    async def wait_for(
        self, suffix: str, where: Callable[[dict], bool] = lambda b: True, timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.on(suffix):
                if where(body):
                    return body
            if self._task is not None and self._task.done():
                self._task.result()
                raise RuntimeError("head-office subscriber stopped")
            await asyncio.sleep(0.1)
        seen = [t for t, _, _ in self.messages][-10:]
        raise TimeoutError(f"nothing on {suffix} within {timeout:.0f} s; last topics: {seen}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task


class Lab:
    """A benchmark's whole world on loopback: Kamailio with `users`, mosquitto, a scratch
    directory, and what the benchmark adds (callers, a head-office subscriber, the
    daemon), all torn down by `close()` whatever state the run ended in."""

    def __init__(self, prefix: str, users: dict[str, str]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.kamailio = Kamailio(users)
        self.kamailio.start()
        self.broker = Mosquitto(self.tmp / "mosquitto").start()
        self.peers: list[Any] = []  # anything with close(): SipPeer, PeerProcess
        self.office: Any = None  # anything with `async close()`
        self.notify: NotifySocket | None = None
        self.daemon: DaemonProcess | None = None

    async def start_daemon(self, config: Path) -> float:
        """`edgecall run` on `config`; returns the seconds it took to report READY, once
        it has also synthesized its fixed prompts."""
        self.notify = NotifySocket(self.tmp / "notify.sock")
        self.daemon = DaemonProcess(config, self.notify, self.tmp / "daemon.log")
        started = time.monotonic()
        self.daemon.start()
        await self.daemon.ready(timeout=120)
        ready_s = time.monotonic() - started
        await self.daemon.prompts_ready(timeout=300)
        return ready_s

    async def close(self) -> None:
        for peer in self.peers:
            peer.close()
        daemon = self.daemon
        if daemon is not None and daemon.proc is not None:
            if daemon.proc.poll() is not None:  # it died under the load: say how
                print(
                    f"\nThe daemon exited with status {daemon.proc.returncode} before the "
                    f"end; its log ends:\n{daemon.log(80)}",
                    file=sys.stderr,
                )
            daemon.stop()
        if self.office is not None:
            await self.office.close()
        if self.notify is not None:
            self.notify.close()
        self.broker.close()
        self.kamailio.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
