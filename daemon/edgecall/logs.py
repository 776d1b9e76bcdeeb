"""Logging: structured journald fields under systemd, readable text on a terminal.

Under systemd every record goes to journald through its native protocol with
fields a technician can filter on (`journalctl -u edgecall CALL_ID=...`,
`EVENT=poor_signal`). Give them with `extra={"call_id": ..., "event": ...}`.
No dependency on libsystemd: the protocol is a datagram of KEY=VALUE lines.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys

JOURNAL_SOCKET = "/run/systemd/journal/socket"
# logging level -> syslog priority
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}
_EXTRA_FIELDS = ("call_id", "event")


def journal_fields(record: logging.LogRecord, message: str) -> list[tuple[str, str]]:
    fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(_PRIORITY.get(record.levelno, 2 if record.levelno > 40 else 6))),
        ("SYSLOG_IDENTIFIER", "edgecall"),
        ("LOGGER", record.name),
        ("CODE_FILE", record.pathname),
        ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName),
    ]
    for name in _EXTRA_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields.append((name.upper(), str(value)))
    return fields


def encode_journal(fields: list[tuple[str, str]]) -> bytes:
    """Native journal protocol: KEY=value lines; values with a newline are length-prefixed."""
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    def __init__(self, address: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self._address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._socket.sendto(encode_journal(journal_fields(record, message)), self._address)
        except Exception:  # noqa: BLE001 - logging must never take the daemon down
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO  edgecall.calls [call 3f2a] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s%(context)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        call_id = getattr(record, "call_id", None)
        record.context = f" [call {call_id}]" if call_id else ""
        return super().format(record)


def use_journal(fmt: str) -> bool:
    if fmt == "auto":
        fmt = os.environ.get("EDGECALL_LOG_FORMAT", "auto")
    if fmt == "auto":
        return bool(os.environ.get("JOURNAL_STREAM")) and os.path.exists(JOURNAL_SOCKET)
    return fmt == "journal"


def setup(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger once, from config.yaml's `logging` section."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler: logging.Handler
    if use_journal(fmt):
        handler = JournalHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
