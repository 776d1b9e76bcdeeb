"""The call limits of the pjsua2 build and their config checks, and the build script's
tarball check and build cache (no compiler runs here)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecall.config.base import SecretRef
from edgecall.config.sip import PJSUA_MAX_CALLS_BUILT, SipConfig, SipTlsConfig

ROOT = Path(__file__).resolve().parents[2]
THIRD_PARTY = ROOT / "third_party"
CONFIG_SITE = THIRD_PARTY / "pjproject" / "config_site.h"
TARBALL = THIRD_PARTY / "pjproject-2.15.1.tar.gz"


def defines() -> dict[str, int]:
    text = CONFIG_SITE.read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"^#define (\w+)\s+(\d+)", text, re.M)}


def sip(**over) -> SipConfig:
    fields = {
        "registrar": "sip:pbx.branch.local",
        "extension": "7001",
        "password": SecretRef(env="SIP_PASSWORD"),
        "agent_target": "8000",
    }
    return SipConfig(**(fields | over))


def test_config_ceiling_is_the_built_pjsua_max_calls_and_the_other_limits_fit_it():
    d = defines()
    assert d["PJSUA_MAX_CALLS"] == PJSUA_MAX_CALLS_BUILT == 64
    # RTP and RTCP per call, with room for transports, connections and the resolver
    assert d["PJ_IOQUEUE_MAX_HANDLES"] >= 4 * d["PJSUA_MAX_CALLS"]
    assert d["PJ_IOQUEUE_MAX_HANDLES"] <= 1024  # glibc's FD_SETSIZE, for select()
    assert d["PJSUA_MAX_PLAYERS"] >= d["PJSUA_MAX_CALLS"]
    assert d["PJSUA_MAX_RECORDERS"] >= d["PJSUA_MAX_CALLS"]


def test_max_concurrent_calls_up_to_the_built_limit():
    assert sip(max_concurrent_calls=64).max_concurrent_calls == 64
    with pytest.raises(ValueError, match="from 1 to 64, or auto; not 65"):
        sip(max_concurrent_calls=65)
    assert 1 <= sip().max_concurrent_calls <= 64  # "auto" is a number once validated


def test_rtp_range_must_hold_two_ports_per_call():
    assert sip(max_concurrent_calls=8, rtp_port_min=30000, rtp_port_max=30015)
    with pytest.raises(ValueError, match="holds 7 RTP/RTCP port pairs, fewer than"):
        sip(max_concurrent_calls=8, rtp_port_min=30000, rtp_port_max=30013)


def test_tls_server_verification_needs_a_ca_list(tmp_path):
    with pytest.raises(ValueError, match="verify_server needs ca_file"):
        sip(transport="tls", tls=SipTlsConfig())
    assert sip(transport="tls", tls=SipTlsConfig(ca_file=tmp_path / "ca.pem"))
    assert sip(transport="tls", tls=SipTlsConfig(verify_server=False))


# -- third_party/build-pjsua2.sh ------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the script and config_site.h (the tarball linked), to run it on."""
    (tmp_path / "third_party" / "pjproject").mkdir(parents=True)
    shutil.copy2(THIRD_PARTY / "build-pjsua2.sh", tmp_path / "third_party")
    shutil.copy2(CONFIG_SITE, tmp_path / "third_party" / "pjproject")
    (tmp_path / "third_party" / TARBALL.name).symlink_to(TARBALL)
    return tmp_path


def run(tree: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(tree / "third_party" / "build-pjsua2.sh"), "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,  # a cache miss would start a build: fail instead of compiling
        env=os.environ | env,
        check=False,
    )


def test_a_tarball_that_is_not_the_vendored_release_is_refused(tree: Path, tmp_path: Path):
    fake = tmp_path / "pjproject-2.15.1.tar.gz"
    fake.write_bytes(b"not the upstream release")
    done = run(tree, "--no-install", PJSUA2_TARBALL=str(fake))
    assert done.returncode == 1
    assert "sha256 mismatch" in done.stderr and "380bb718c991a662" in done.stderr
    assert not (tree / ".cache").exists()  # nothing unpacked or built


def test_a_cached_build_is_reused_and_its_key_follows_config_site(tree: Path):
    key = run(tree, "--print-key").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    out = tree / ".cache" / "pjsua2" / key
    (out / "dist").mkdir(parents=True)
    wheel = out / "dist" / "pjsua2-2.15.1-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"")
    (out / "stamp").write_text(f"key {key}\nbuilt 2026-01-01T00:00:00Z in 1s on x86_64\n")
    done = run(tree, "--no-install")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(wheel) and "is cached" in done.stderr
    # a changed limit is a different build
    site = tree / "third_party" / "pjproject" / "config_site.h"
    site.write_text(re.sub(r"PJSUA_MAX_CALLS\s+64", "PJSUA_MAX_CALLS 32", site.read_text()))
    assert run(tree, "--print-key").stdout.strip() != key
