"""The shipped systemd units pass `systemd-analyze verify` and stay hardened."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edgecall.sdnotify import Notifier, watchdog_interval_s

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "edgecall.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze missing (make deps installs it)"
)
EDGECALL = Path(sys.executable).parent / "edgecall"


def installed_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's edgecall, as verify needs it."""
    unit = tmp_path / "edgecall.service"
    text = text if text is not None else UNIT.read_text()
    unit.write_text(text.replace("/opt/edgecall/venv/bin/edgecall", str(EDGECALL)))
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_service_unit_verifies_cleanly(tmp_path):
    result = verify(installed_copy(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_verify_would_catch_a_typo(tmp_path):
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    result = verify(installed_copy(tmp_path, broken))
    assert "ProtectSytem" in result.stderr


def test_unit_is_notify_with_watchdog_and_credentials():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "StateDirectory=edgecall",
        "ConfigurationDirectory=edgecall",
        "LogsDirectory=edgecall",
        "DevicePolicy=closed",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    assert re.search(r"^LoadCredential=sip-password:", text, re.M)
    assert re.search(r"^RestrictAddressFamilies=.*AF_INET6", text, re.M)


def test_security_exposure_stays_low(tmp_path):
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(installed_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for edgecall\.service: ([\d.]+)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr
    assert float(found[1]) <= 2.5


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} missing")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_sysusers_entry_creates_the_daemon_user():
    conf = REPO / "systemd" / "edgecall.sysusers.conf"
    result = run_tool("systemd-sysusers", "--dry-run", str(conf))
    assert result.returncode == 0, result.stderr


def test_tmpfiles_entry_creates_a_private_credentials_directory(tmp_path):
    conf = REPO / "systemd" / "edgecall.tmpfiles.conf"
    result = run_tool("systemd-tmpfiles", "--root", str(tmp_path), "--create", str(conf))
    assert result.returncode == 0, result.stderr
    created = tmp_path / "etc" / "edgecall" / "credentials"
    assert created.is_dir()
    assert created.stat().st_mode & 0o777 == 0o700


def test_sd_notify_messages_reach_the_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    notifier = Notifier(str(path))
    assert notifier.ready("registered; 0 calls; mqtt ok; outbox 0")
    assert notifier.watchdog()
    assert server.recv(4096) == b"READY=1\nSTATUS=registered; 0 calls; mqtt ok; outbox 0"
    assert server.recv(4096) == b"WATCHDOG=1"
    notifier.close()
    server.close()
    assert Notifier("").notify(READY=1) is False  # outside systemd: a no-op
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None
