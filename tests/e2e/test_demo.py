"""`make demo` end to end: `python -m edgecall.demo` as a newcomer runs it.

The demo starts Kamailio, mosquitto, the daemon, `edgecall tail` and a PJSUA2
caller. Every process it starts inherits a marker in its environment, so the
tests can tell that none is left afterwards (whether it ended normally, failed or
was interrupted) without confusing them with other work on the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MARK = "EDGECALL_DEMO_TEST_MARK"


def marked_processes(mark: str) -> list[str]:
    """Command lines of the live processes whose environment carries `mark`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"{MARK}={mark}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue  # a zombie has ended; only its parent's wait is missing
            found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError):
            continue
    return found


def no_marked_processes(mark: str, grace_s: float = 5.0) -> list[str]:
    """Waits briefly for processes that are already exiting, then returns those still alive."""
    deadline = time.monotonic() + grace_s
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


class Demo:
    """The demo in its own process group (as a terminal runs it), output collected live."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecall.demo"],
            cwd=REPO,
            env={**os.environ, MARK: self.mark, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the demo's output:\n{self.output}")

    def finish(self, timeout: float = 180) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise
        self._reader.join(timeout=5)
        return code

    def workdir(self) -> Path:
        found = re.search(r"work files in (\S+?);", self.output)
        assert found, self.output
        return Path(found.group(1))


def test_make_demo_shows_both_outcomes_and_stops_everything() -> None:
    demo = Demo()
    code = demo.finish()
    out = demo.output
    assert code == 0, out
    # live, through edgecall tail
    assert re.search(r"\| .* OUTCOME .* outcome=completed ", out), out
    assert re.search(r"\| .* OUTCOME .* outcome=poor_signal_hangup ", out), out
    assert re.search(r"\| .* type=sms\.requested route=mqtt number=1002", out), out
    # and in the final summary
    assert "2 calls, 2 outcomes: completed, poor_signal_hangup" in out
    assert "SMS text: Your signal was too weak" in out
    assert "models.acoustic_emotion: null" in out
    assert no_marked_processes(demo.mark) == []
    assert not demo.workdir().exists()


def test_ctrl_c_stops_everything_the_demo_started() -> None:
    demo = Demo()
    demo.wait_for_line("==> call 1")
    os.killpg(demo.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    assert demo.finish(timeout=60) == 130, demo.output
    assert "interrupted" in demo.output
    assert no_marked_processes(demo.mark) == []
    assert not demo.workdir().exists()


def test_a_failed_step_says_what_failed_shows_the_log_and_cleans_up() -> None:
    demo = Demo()
    demo.wait_for_line("==> call 1")
    daemons = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _is_marked_daemon(p, demo.mark)
    ]
    assert len(daemons) == 1, daemons
    os.kill(daemons[0], signal.SIGKILL)
    assert demo.finish(timeout=60) == 1, demo.output
    out = demo.output
    assert "FAILED: call 1" in out
    assert "the daemon exited with status -9" in out
    daemon_log = out.split("--- last lines of the daemon log ---\n", 1)[1].split("\n---")[0]
    assert re.search(r"\d\d:\d\d:\d\d INFO  edgecall", daemon_log), out  # its own lines
    workdir = demo.workdir()
    assert (workdir / "daemon.log").exists()  # kept for the newcomer to read
    assert no_marked_processes(demo.mark) == []
    shutil.rmtree(workdir)


def _is_marked_daemon(proc: Path, mark: str) -> bool:
    try:
        env = (proc / "environ").read_bytes().split(b"\0")
        cmd = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARK}={mark}".encode() in env and cmd[1:4] == [b"-m", b"edgecall.cli", b"run"]
