"""SIGKILL of the appliance process: Last Will, and no queued message lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_helpers import PREFIX, collecting

from tests.harness.mosquitto import Mosquitto

SCRIPT = Path(__file__).with_name("publisher_proc.py")


class Proc:
    """publisher_proc.py in a child process; lines it prints are read as they come."""

    def __init__(self, port: int, state_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--port",
                str(port),
                "--state-dir",
                str(state_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def expect(self, prefix: str, timeout: float = 30) -> str:
        """Wait for a line starting with `prefix` (other lines are skipped)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        while True:
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
            if line.startswith(prefix):
                return line
            if not line:
                self.proc.wait(10)
                err = self.proc.stderr.read()
                raise AssertionError(f"process ended before {prefix!r}; stderr: {err[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def queued_rows(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "outbox.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM messages").fetchone()[0]


async def test_last_will_offline_after_sigkill(mosquitto: Mosquitto, state_dir: Path):
    async with collecting(mosquitto, f"{PREFIX}/status") as col:
        proc = Proc(mosquitto.port, state_dir)
        try:
            await proc.expect("READY")
            await col.wait_for(lambda ms: any(m.json()["state"] == "online" for m in ms), 15)
        finally:
            proc.kill()
        await col.wait_for(lambda ms: ms[-1].json()["state"] == "offline", 15)
    async with collecting(mosquitto, f"{PREFIX}/status", client_id="late", clean=True) as late:
        await late.wait_for(lambda ms: len(ms) >= 1, 10)
    assert late.messages[0].retain and late.messages[0].json()["state"] == "offline"


@pytest.mark.slow
async def test_sigkill_with_500_queued_then_mid_drain(mosquitto: Mosquitto, state_dir: Path):
    mosquitto.stop()  # broker down: all 500 stay queued on disk
    proc = Proc(mosquitto.port, state_dir, "--count", "500")
    try:
        await proc.expect("READY")
        await proc.expect("QUEUED 500")
    finally:
        proc.kill()
    assert queued_rows(state_dir) == 500

    mosquitto.start()
    async with collecting(mosquitto, f"{PREFIX}/calls/+/events") as col:
        proc = Proc(mosquitto.port, state_dir)  # restart: drains what the dead one left
        try:
            await proc.expect("READY")
            await col.wait_for(lambda ms: len(ms) >= 30, 20)
        finally:
            proc.kill()  # SIGKILL again, most likely mid-drain
        proc = Proc(mosquitto.port, state_dir, "--exit-when-drained")
        try:
            await proc.expect("READY")
            await proc.expect("DONE")
        finally:
            proc.kill()
        await col.wait_for(lambda ms: len({m.json()["message_id"] for m in ms}) >= 500, 20)
    assert queued_rows(state_dir) == 0
    firsts: dict[str, int] = {}
    for m in col.messages:
        firsts.setdefault(m.json()["message_id"], m.json()["n"])
    assert list(firsts.values()) == list(range(500))
