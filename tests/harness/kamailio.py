"""A real Kamailio (Debian /usr/sbin/kamailio) on a free loopback port, for SIP tests.

The generated kamailio.cfg is a registrar with digest auth for a fixed set of
extensions (passwords held in an in-memory htable, no database), and a proxy
that routes INVITE/MESSAGE between registered extensions, with record-routing so
in-dialog requests (BYE, INFO, REFER, re-INVITE) pass through it too. Locations
live in memory only, so a restart forgets every registration, like a PBX reboot.

Run standalone for manual poking:
    python tests/harness/kamailio.py 1001=pw1 1002=pw2
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KAMAILIO = "/usr/sbin/kamailio"
_MODULES = (
    "tm",
    "tmx",
    "sl",
    "rr",
    "pv",
    "maxfwd",
    "textops",
    "siputils",
    "xlog",
    "sanity",
    "usrloc",
    "registrar",
    "auth",
    "htable",
)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even by abort or kill -9.

    Linux ties this to the thread that started the child, so call start() from a
    long-lived thread (the main thread or the event loop's), not a short-lived worker.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (probed, so a small race remains)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port found")


def render_config(
    port: int, users: dict[str, str], min_expires: int = 5, aliases: dict[str, str] | None = None
) -> str:
    """kamailio.cfg text for a registrar/proxy on 127.0.0.1:port with these users; a
    call to a number in `aliases` rings the user it names (many numbers, one peer)."""
    loads = "\n".join(f'loadmodule "{m}.so"' for m in _MODULES)
    init = "\n".join(f'    $sht(users=>{u}) = "{p}";' for u, p in users.items())
    init += "".join(f'\n    $sht(aliases=>{n}) = "{u}";' for n, u in (aliases or {}).items())
    return f"""#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="127.0.0.1:{port}"

mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
{loads}

modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {min_expires})
modparam("registrar", "max_contacts", 4)
modparam("rr", "append_fromtag", 1)
modparam("htable", "htable", "users=>size=4;")
modparam("htable", "htable", "aliases=>size=6;")
modparam("tm", "fr_timer", 5000)
modparam("tm", "fr_inv_timer", 120000)

event_route[htable:mod-init] {{
{init}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("17895", "7")) {{
        xlog("L_WARN", "malformed $rm from $si:$sp dropped\\n");
        exit;
    }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (!is_method("ACK")) t_check_trans();
    remove_hf("Route");
    if (is_method("REGISTER")) {{
        $var(pw) = $sht(users=>$au);
        if (!pv_auth_check("$fd", "$var(pw)", "0", "1")) {{
            xlog("L_NOTICE", "REGISTER challenge/deny for $fU from $si:$sp\\n");
            auth_challenge("$fd", "0");
            exit;
        }}
        consume_credentials();
        if (!save("location")) sl_reply_error();
        exit;
    }}
    if (is_method("INVITE|MESSAGE|REFER|SUBSCRIBE")) {{
        $var(pw) = $sht(users=>$au);
        if (!pv_auth_check("$fd", "$var(pw)", "0", "0")) {{
            auth_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
    }}
    if (is_method("INVITE|SUBSCRIBE|REFER")) record_route();
    if ($sht(aliases=>$rU) != $null) $rU = $sht(aliases=>$rU);
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


class Kamailio:
    """One kamailio process; stop()/start() again reuse the same port and config."""

    def __init__(
        self,
        users: dict[str, str] | None = None,
        port: int | None = None,
        aliases: dict[str, str] | None = None,
    ) -> None:
        self.users = users or {"1001": "pw-1001", "1002": "pw-1002", "1003": "pw-1003"}
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._dir = Path(tempfile.mkdtemp(prefix="kamailio-"))
        self.config_path = self._dir / "kamailio.cfg"
        self.config_path.write_text(render_config(self.port, self.users, aliases=aliases))
        self.log_path = self._dir / "kamailio.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            raise RuntimeError("kamailio already running")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                KAMAILIO,
                "-DD",
                "-E",
                "-f",
                str(self.config_path),
                "-Y",
                str(self._dir),
                "-m",
                "32",
                "-M",
                "4",
                "-w",
                str(self._dir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"kamailio exited at start:\n{self.log_tail()}")
            if self.ping(timeout=0.2):
                return
        self.stop()
        raise RuntimeError(f"kamailio did not answer OPTIONS:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ping(self, timeout: float = 1.0) -> bool:
        """True when an OPTIONS keepalive over UDP gets a 200."""
        branch = "z9hG4bK" + secrets.token_hex(6)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            lport = s.getsockname()[1]
            msg = (
                f"OPTIONS sip:{self.host}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:ping@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
                f"To: <sip:{self.host}:{self.port}>\r\n"
                f"Call-ID: {secrets.token_hex(8)}@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), (self.host, self.port))
            s.settimeout(timeout)
            try:
                data, _ = s.recvfrom(4096)
            except OSError:
                return False
            return data.startswith(b"SIP/2.0 200")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Kamailio:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


if __name__ == "__main__":
    users = dict(arg.split("=", 1) for arg in sys.argv[1:]) or None
    with Kamailio(users) as k:
        print(f"kamailio on {k.uri}, users {k.users}, config {k.config_path}; Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
