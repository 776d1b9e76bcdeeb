"""An AT command channel to a modem over a serial device or TCP.

Why it is more than write-and-read: a modem interleaves unsolicited result codes
(URCs: `+CMTI`, `RING`, `^RSSI`, ...) with the replies to our commands, may echo
what we type, emits line noise when plugged or reset, and sometimes says nothing
at all. So: one command in flight per port (an asyncio.Lock); each command ends
at a final result code (OK, ERROR, +CME ERROR: n, +CMS ERROR: n) or at its
timeout; information lines are kept only when they carry the command's own
prefix (`AT+CSQ` -> `+CSQ:`), URCs go to a callback, and anything else is
counted as noise and dropped. `AT+CMGS` waits for the `> ` prompt before the
message body is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CTRL_Z = b"\x1a"
ESC = b"\x1b"

_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_PREFIX_OF_COMMAND = re.compile(r"^AT([+^$#%][A-Z0-9]+)", re.IGNORECASE)
_URC_WORDS = ("RING", "NO CARRIER", "RDY", "BUSY", "NO ANSWER", "POWERED DOWN")
# URCs whose next line belongs to them (text-mode SMS and broadcast delivery).
_TWO_LINE_URCS = ("+CMT:", "+CDS:", "+CBM:")


class AtError(Exception):
    """Base of everything the channel raises."""


class AtCommandError(AtError):
    """The modem answered ERROR, +CME ERROR: n or +CMS ERROR: n."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"{command}: {result}")
        self.command = command
        self.result = result
        kind, _, code = result.partition(":")
        self.kind = kind.strip()  # "ERROR", "+CME ERROR", "+CMS ERROR"
        self.code = code.strip() or None


class AtTimeout(AtError):
    """No final result code within the timeout."""


class ModemUnavailable(AtError):
    """The port is not open, could not be opened, or went away (unplugged)."""


@dataclass(frozen=True)
class Prompt:
    """The `> ` that invites the body of an SMS."""


def clean_line(raw: bytes) -> str:
    """Printable ASCII only: line noise and stray control bytes are dropped."""
    return _PRINTABLE.sub("", raw.decode("latin-1")).strip()


@dataclass
class LineSplitter:
    """Bytes in, lines (and prompts) out. Pure, so chunking can be tested exhaustively.

    Lines end at CR or LF; empty lines vanish. While `expect_prompt` is set, an
    unterminated `>` at the start of the pending bytes is a `Prompt`.
    """

    expect_prompt: bool = False
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[str | Prompt]:
        self._buf.extend(data)
        out: list[str | Prompt] = []
        while True:
            if self.expect_prompt:
                stripped = bytes(self._buf).lstrip(b"\r\n\x00")
                if stripped.startswith(b">"):
                    self._buf = bytearray(stripped[1:].lstrip(b" "))
                    self.expect_prompt = False
                    out.append(Prompt())
                    continue
            cut = next((i for i, b in enumerate(self._buf) if b in (0x0D, 0x0A)), -1)
            if cut < 0:
                return out
            line = clean_line(bytes(self._buf[:cut]))
            del self._buf[: cut + 1]
            if line:
                out.append(line)


def final_result(line: str) -> str | None:
    """The final result code the line is, or None."""
    upper = line.upper()
    if upper in ("OK", "ERROR") or upper.startswith(("+CME ERROR:", "+CMS ERROR:")):
        return upper if upper in ("OK", "ERROR") else line
    return None


def looks_like_urc(line: str) -> bool:
    return line.startswith(("+", "^")) or line.upper() in _URC_WORDS


def reply_prefix(command: str) -> str | None:
    """`AT+CSQ` -> `+CSQ:`; None for basic commands (ATE0, ATI) whose replies are bare."""
    m = _PREFIX_OF_COMMAND.match(command.strip())
    return f"{m.group(1).upper()}:" if m else None


@dataclass
class _Pending:
    command: str
    prefix: str | None
    done: asyncio.Future[str]
    prompt: asyncio.Future[None] | None = None
    payload_text: str = ""
    lines: list[str] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self, channel: AtChannel) -> None:
        self._channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._channel._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._channel._data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._channel._lost(exc)


class AtChannel:
    """One modem port. Use `open_serial` or `open_tcp`, then `command`."""

    def __init__(
        self,
        *,
        timeout_s: float = 2.0,
        on_urc: Callable[[str], None] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.on_urc = on_urc
        self.noise_lines = 0  # lines dropped as garbage or late replies
        self._lock = asyncio.Lock()
        self._splitter = LineSplitter()
        self._transport: asyncio.WriteTransport | None = None
        self._pending: _Pending | None = None
        self._urc_head: str | None = None
        self._late_prefix: str | None = None
        self._closed_reason = "not opened"

    # -- opening and closing ---------------------------------------------------------

    async def open_serial(self, device: Path | str, baudrate: int = 115200) -> None:
        import serial_asyncio_fast

        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: _Protocol(self), str(device), baudrate=baudrate
            )
        except OSError as exc:  # serial.SerialException is an OSError
            raise ModemUnavailable(f"cannot open {device}: {exc}") from None
        self._opened(transport)

    async def open_tcp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _Protocol(self), host, port)
        except OSError as exc:
            raise ModemUnavailable(f"cannot connect to {host}:{port}: {exc.strerror}") from None
        self._opened(transport)

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        # connection_made may run later (serial): the transport is usable now.
        self._transport = transport  # type: ignore[assignment]
        self._splitter = LineSplitter()
        self._closed_reason = ""

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @property
    def closed_reason(self) -> str:
        return self._closed_reason or "open"

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._lost(None, reason="closed")

    # -- commands --------------------------------------------------------------------

    async def command(self, command: str, *, timeout_s: float | None = None) -> list[str]:
        """Send one command; return its information lines; raise on an error result."""
        async with self._lock:
            return await self._run(command, None, timeout_s or self.timeout_s)

    async def command_with_prompt(
        self, command: str, payload: bytes, *, timeout_s: float | None = None
    ) -> list[str]:
        """`AT+CMGS=...`: wait for `> `, send payload + Ctrl-Z, wait for the result."""
        async with self._lock:
            return await self._run(command, payload, timeout_s or self.timeout_s)

    async def _run(self, command: str, payload: bytes | None, timeout_s: float) -> list[str]:
        if not self.is_open:
            raise ModemUnavailable(f"port {self.closed_reason}")
        loop = asyncio.get_running_loop()
        pending = _Pending(command, reply_prefix(command), loop.create_future())
        if payload is not None:
            pending.prompt = loop.create_future()
            pending.payload_text = clean_line(payload)
            self._splitter.expect_prompt = True
        self._pending = pending
        try:
            async with asyncio.timeout(timeout_s):
                self._write(command.encode("ascii") + b"\r")
                if pending.prompt is not None and payload is not None:
                    done_first, _ = await asyncio.wait(
                        {pending.prompt, pending.done}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if pending.done in done_first:  # ERROR instead of a prompt
                        return self._result(pending)
                    self._write(payload + CTRL_Z)
                await pending.done
                return self._result(pending)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if payload is not None and self.is_open:
                self._write(ESC)  # leave text entry so the next command is heard
            self._late_prefix = pending.prefix
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise AtTimeout(f"{command}: no final result in {timeout_s:g} s") from None
        finally:
            self._splitter.expect_prompt = False
            self._pending = None

    def _result(self, pending: _Pending) -> list[str]:
        final = pending.done.result()
        if final != "OK":
            raise AtCommandError(pending.command, final)
        self._late_prefix = None
        return pending.lines

    def _write(self, data: bytes) -> None:
        if self._transport is None:
            raise ModemUnavailable(f"port {self.closed_reason}")
        self._transport.write(data)

    # -- incoming --------------------------------------------------------------------

    def _data(self, data: bytes) -> None:
        for item in self._splitter.feed(data):
            if isinstance(item, Prompt):
                p = self._pending
                if p is not None and p.prompt is not None and not p.prompt.done():
                    p.prompt.set_result(None)
                continue
            self._line(item)

    def _line(self, line: str) -> None:
        if self._urc_head is not None:  # body line of a two-line URC
            head, self._urc_head = self._urc_head, None
            self._urc(f"{head}\n{line}")
            return
        p = self._pending
        if p is None or p.done.done():
            self._idle_line(line)
            return
        if line.upper() == p.command.strip().upper() or line in (">",):
            return  # echo of our command (ATE1) or a repeated prompt
        if (
            p.prompt is not None
            and p.prompt.done()
            and not p.lines
            and line in p.payload_text
            and final_result(line) in (None, "OK")
        ):
            return  # echo of the SMS body
        final = final_result(line)
        if final is not None:
            p.done.set_result(final)
            return
        if p.prefix is not None:
            if line.upper().startswith(p.prefix):
                p.lines.append(line)
            elif looks_like_urc(line):
                self._idle_line(line)
            else:
                self.noise_lines += 1
            return
        if looks_like_urc(line):
            self._idle_line(line)
        else:
            p.lines.append(line)

    def _idle_line(self, line: str) -> None:
        if final_result(line) is not None:
            self.noise_lines += 1  # a late result of a timed-out command
            return
        if self._late_prefix and line.upper().startswith(self._late_prefix):
            self.noise_lines += 1
            return
        if not looks_like_urc(line):
            self.noise_lines += 1
            return
        if line.upper().startswith(_TWO_LINE_URCS):
            self._urc_head = line
            return
        self._urc(line)

    def _urc(self, text: str) -> None:
        if self.on_urc is None:
            return
        try:
            self.on_urc(text)
        except Exception:  # a broken listener must not kill the port
            log.exception("URC callback failed on %r", text)

    def _lost(self, exc: Exception | None, reason: str | None = None) -> None:
        self._transport = None
        self._closed_reason = reason or (f"lost: {exc}" if exc else "disconnected")
        p = self._pending
        if p is not None:
            for fut in (p.done, p.prompt):
                if fut is not None and not fut.done():
                    fut.set_exception(ModemUnavailable(f"port {self._closed_reason}"))
                    with contextlib.suppress(Exception):
                        fut.exception()  # mark retrieved; the waiter re-raises it
