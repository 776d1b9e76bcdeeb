"""A simulated GSM/LTE module on a pseudo-terminal (or a loopback TCP port).

It answers the AT commands edgecall uses the way real modules do: echo on by
default (ATE0/ATE1), OK / ERROR / +CME ERROR: n, +CSQ / +CESQ / +QCSQ from the
current `signal` (or a scripted trace), text-mode SMS with the `> ` prompt and
`+CMGS: <mr>` while recording the exact bytes received. Faults on demand:
silence, scripted error results, garbage bytes and URCs interleaved with
replies, and `unplug()` which closes the pty under the client's feet.

The modem runs in its own thread, blocked in select() when idle.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import tty
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SignalState:
    """What the module reports; fields follow TS 27.007 and Quectel's +QCSQ."""

    csq: tuple[int, int] = (99, 99)
    cesq: tuple[int, ...] = (99, 99, 255, 255, 255, 255)
    qcsq: str = '"NOSERVICE"'

    @classmethod
    def lte(cls, rsrp_dbm: int) -> SignalState:
        """An LTE cell with this RSRP (RSSI about 20 dB above it, as is typical)."""
        rsrp_index = max(0, min(97, rsrp_dbm + 141))
        rssi_dbm = rsrp_dbm + 20
        csq_index = max(0, min(31, (rssi_dbm + 113) // 2))
        return cls(
            csq=(csq_index, 99),
            cesq=(99, 99, 255, 255, 20, rsrp_index),
            qcsq=f'"LTE",{rssi_dbm},{rsrp_dbm},120,-10',
        )

    @classmethod
    def gsm_csq(cls, rssi_index: int) -> SignalState:
        """A 2G cell that only reports through +CSQ."""
        return cls(csq=(rssi_index, 0))

    @classmethod
    def unknown(cls) -> SignalState:
        return cls()


@dataclass
class _Override:
    prefix: str
    reply: str | None  # None: stay silent
    remaining: int


@dataclass
class FakeModem:
    echo: bool = True
    vendor: str = "generic"  # "quectel" answers AT+QCSQ
    cesq_supported: bool = True
    transport: str = "pty"  # or "tcp"
    signal: SignalState = field(default_factory=SignalState)
    trace: list[SignalState] = field(default_factory=list)
    advance_on: str = "AT+CESQ"  # the command that moves the trace one step
    urcs_in_reply: list[bytes] = field(default_factory=list)  # between info and final
    cmgs_result: str | None = None  # e.g. "+CMS ERROR: 500" to refuse SMS
    cmgs_silent: bool = False  # prompt, take the body, then never answer

    # records
    received: bytearray = field(default_factory=bytearray)
    commands: list[str] = field(default_factory=list)
    sms: list[tuple[str, bytes]] = field(default_factory=list)  # (AT+CMGS=..., body)
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._overrides: list[_Override] = []
        self._trace_index = -1
        self._mr = 0
        self._line = bytearray()
        self._sms_cmd: str | None = None
        self._body = bytearray()
        self._wlock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._drop = False
        self._fd: int | None = None
        self._slave: int | None = None
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None
        self.path = ""
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="fake-modem", daemon=True)

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> FakeModem:
        if self.transport == "pty":
            self._fd, self._slave = os.openpty()
            tty.setraw(self._slave)
            self.path = os.ttyname(self._slave)
        else:
            self._server = socket.create_server(("127.0.0.1", 0))
            self.port = self._server.getsockname()[1]
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def unplug(self) -> None:
        """The module goes away: the pty (or TCP connection) is closed."""
        self.stop()

    def drop_link(self) -> None:
        """TCP only: close the client's connection but keep listening (a gateway reboot)."""
        self._drop = True
        os.write(self._wake_w, b"x")

    def __enter__(self) -> FakeModem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()

    # -- scripting -------------------------------------------------------------------

    def fail_next(self, prefix: str, result: str = "ERROR", count: int = 1) -> None:
        """The next `count` commands starting with `prefix` end with `result`."""
        self._overrides.append(_Override(prefix.upper(), result, count))

    def go_silent(self, prefix: str = "AT", count: int = 1_000_000) -> None:
        """Swallow the next `count` commands starting with `prefix` without a word."""
        self._overrides.append(_Override(prefix.upper(), None, count))

    def speak_again(self) -> None:
        self._overrides.clear()

    def inject(self, data: bytes) -> None:
        """Write raw bytes now (garbage, a URC) as if the module sent them."""
        self._write(data)

    # -- the modem -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.transport == "pty":
                self._serve(self._fd)
            else:
                self._serve_tcp()
        finally:
            for fd in (self._fd, self._slave):
                if fd is not None:
                    os.close(fd)
            self._fd = self._slave = None
            for s in (self._conn, self._server):
                if s is not None:
                    s.close()

    def _serve_tcp(self) -> None:
        assert self._server is not None
        while not self._stop:
            ready, _, _ = select.select([self._server, self._wake_r], [], [])
            if self._wake_r in ready:
                os.read(self._wake_r, 1)
                if self._stop:
                    return
                continue
            self._conn, _ = self._server.accept()
            self._serve(self._conn.fileno())
            with self._wlock:
                self._conn.close()
                self._conn = None
            self._line.clear()
            self._sms_cmd = None

    def _serve(self, fd: int | None) -> None:
        assert fd is not None
        while not self._stop:
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                os.read(self._wake_r, 1)
                self._drop = False
                return
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.received.extend(data)
            for b in data:
                self._byte(b)

    def _write(self, data: bytes) -> None:
        with self._wlock:
            try:
                if self._conn is not None:
                    self._conn.sendall(data)
                elif self._fd is not None:
                    os.write(self._fd, data)
            except OSError:
                pass

    def _byte(self, b: int) -> None:
        if self._sms_cmd is not None:
            self._text_entry(b)
            return
        if b == 0x0D:
            line = self._line.decode("latin-1")
            self._line.clear()
            if self.echo:
                self._write(line.encode("latin-1") + b"\r")
            self._command(line.strip())
        elif b >= 0x20:  # control bytes (LF, a stray ESC) are ignored in command mode
            self._line.append(b)

    def _text_entry(self, b: int) -> None:
        if self.echo and b not in (0x1A, 0x1B):
            self._write(bytes([b]))
        if b == 0x1B:  # ESC: abandon the message
            self._sms_cmd = None
            self._body.clear()
            self._write(b"\r\nOK\r\n")
        elif b == 0x1A:
            command, self._sms_cmd = self._sms_cmd, None
            self.sms.append((command, bytes(self._body)))
            self._body.clear()
            if self.cmgs_silent:
                return
            if self.cmgs_result is not None:
                self._write(f"\r\n{self.cmgs_result}\r\n".encode())
                return
            self._mr += 1
            self._reply([f"+CMGS: {self._mr}"], "OK")
        else:
            self._body.append(b)

    def _reply(self, info: list[str], final: str) -> None:
        out = b"".join(f"\r\n{line}\r\n".encode() for line in info)
        out += b"".join(self.urcs_in_reply)
        self._write(out + f"\r\n{final}\r\n".encode())

    def _current_signal(self, command: str) -> SignalState:
        if not self.trace:
            return self.signal
        if command == self.advance_on:
            self._trace_index = min(self._trace_index + 1, len(self.trace) - 1)
        return self.trace[max(self._trace_index, 0)]

    def _command(self, line: str) -> None:
        upper = line.upper()
        if not upper.startswith("AT"):
            return  # line noise from the host side
        self.commands.append(line)
        for o in self._overrides:
            if o.remaining > 0 and upper.startswith(o.prefix):
                o.remaining -= 1
                if o.reply is not None:
                    self._write(f"\r\n{o.reply}\r\n".encode())
                return
        if upper in ("AT", "ATE0", "ATE1"):
            if upper != "AT":
                self.echo = upper == "ATE1"
            self._reply([], "OK")
        elif upper == "AT+CSQ":
            s = self._current_signal(upper)
            self._reply([f"+CSQ: {s.csq[0]},{s.csq[1]}"], "OK")
        elif upper == "AT+CESQ":
            if not self.cesq_supported:
                self._reply([], "ERROR")
                return
            s = self._current_signal(upper)
            self._reply(["+CESQ: " + ",".join(str(v) for v in s.cesq)], "OK")
        elif upper == "AT+QCSQ":
            if self.vendor != "quectel":
                self._reply([], "ERROR")
                return
            self._reply([f"+QCSQ: {self._current_signal(upper).qcsq}"], "OK")
        elif upper.startswith(("AT+CMEE=", "AT+CMGF=", "AT+CSCS=", "AT+CSMP=")):
            name, _, value = line[2:].partition("=")
            self.settings[name.upper()] = value
            self._reply([], "OK")
        elif upper.startswith("AT+CMGS="):
            if self.settings.get("+CMGF") != "1":
                self._reply([], "+CMS ERROR: 302")
                return
            self._sms_cmd = line
            self._write(b"\r\n> ")
        else:
            self._reply([], "ERROR")
