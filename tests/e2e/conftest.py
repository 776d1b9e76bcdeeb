"""The whole appliance for real: `edgecall run` as a process, a Kamailio PBX, a
mosquitto broker, a PJSUA2 caller, the shipped models, and a NOTIFY_SOCKET the
test binds itself to watch what systemd would see."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.harness.kamailio import Kamailio
from tests.harness.lab import (
    AGENT,
    APPLIANCE,
    CALLER,
    PREFIX,
    USERS,
    NotifySocket,
    render_prompts,
    write_appliance_config,
)
from tests.harness.mosquitto import Mosquitto
from tests.harness.sip_peer import SipPeer
from tests.sip.sip_helpers import rtp_base

__all__ = ["AGENT", "APPLIANCE", "CALLER", "PREFIX"]


class Subscriber:
    """Everything the appliance publishes under its prefix, as head office sees it."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def _run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe(f"{PREFIX}/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload.decode() if message.payload else ""
                try:
                    body = json.loads(payload) if payload.startswith("{") else {"raw": payload}
                except json.JSONDecodeError:
                    body = {"raw": payload}
                self.messages.append((str(message.topic), body, bool(message.retain)))

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [b for t, b, _ in self.messages if t == f"{PREFIX}/{suffix}"]

    async def wait_for(
        self, suffix: str, where: Callable[[dict], bool] = lambda b: True, timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.on(suffix):
                if where(body):
                    return body
            await asyncio.sleep(0.1)
        seen = [t for t, _, _ in self.messages][-20:]
        raise TimeoutError(f"nothing on {suffix} within {timeout} s; saw {seen}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task


class Daemon:
    def __init__(self, config_path: Path, notify: NotifySocket, log_path: Path) -> None:
        self.config_path = config_path
        self.notify = notify
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "EDGECALL_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecall.cli", "run", "--config", str(self.config_path)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.notify.seen("READY", "1"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemon not READY in {timeout} s:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemon still running after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # thread stacks into the log
                time.sleep(1)
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                raise AssertionError(f"daemon ignored SIGTERM for 60 s:\n{self.log()}") from None
        self._log.close()


@pytest.fixture(scope="session")
def prompt_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The English campaign's prompts, recorded with espeak-ng (what the caller hears)."""
    return render_prompts(tmp_path_factory.mktemp("prompts"))


@pytest.fixture
def kamailio() -> Iterator[Kamailio]:
    k = Kamailio(dict(USERS))
    k.start()
    yield k
    k.cleanup()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as m:
        yield m


@pytest.fixture
def appliance_config(
    tmp_path: Path, kamailio: Kamailio, broker: Mosquitto, prompt_wavs: dict[str, Path]
) -> Callable[..., Path]:
    """Writes a config.yaml for the daemon: the shipped one, pointed at the test peers."""

    def write(**changes: Any) -> Path:
        secret = tmp_path / "sip-password"
        secret.write_text(kamailio.users[APPLIANCE])
        return write_appliance_config(
            tmp_path / "config.yaml",
            registrar=kamailio.uri,
            password_file=secret,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            state_dir=tmp_path / "state",
            prompt_wavs=prompt_wavs,
            rtp_base=rtp_base(),
            **changes,
        )

    return write


@pytest.fixture
async def running(
    tmp_path: Path, appliance_config: Callable[..., Path], broker: Mosquitto
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start the daemon (with config changes) and a head-office subscriber."""
    started: list[tuple[Daemon, Subscriber, NotifySocket]] = []

    async def start(**changes: Any) -> tuple[Daemon, Subscriber]:
        subscriber = Subscriber(broker)
        await subscriber.start()
        notify = NotifySocket(tmp_path / "notify.sock")
        daemon = Daemon(appliance_config(**changes), notify, tmp_path / "daemon.log")
        started.append((daemon, subscriber, notify))
        daemon.start()
        await daemon.ready()
        await subscriber.wait_for(
            "status", lambda b: b.get("raw") == "online" or b.get("state") == "online", timeout=30
        )
        return daemon, subscriber

    yield start
    for daemon, subscriber, notify in started:
        daemon.stop()
        await subscriber.close()
        notify.close()


@pytest.fixture
def caller(kamailio: Kamailio, tmp_path: Path) -> Iterator[Callable[..., SipPeer]]:
    made: list[SipPeer] = []

    def start(user: str = CALLER, **kw: Any) -> SipPeer:
        peer = SipPeer(
            kamailio.uri,
            user,
            kamailio.users[user],
            rtp_port=rtp_base(),
            log_path=tmp_path / f"peer-{user}.log",
            **kw,
        )
        made.append(peer)
        return peer

    yield start
    for peer in made:
        peer.close()
