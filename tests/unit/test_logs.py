"""Journald fields reach the journal socket; the terminal gets readable lines."""

from __future__ import annotations

import logging
import socket
import struct

from edgecall.logs import JournalHandler, TextFormatter


def parse_journal(data: bytes) -> dict[str, str]:
    fields, i = {}, 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            fields[key.decode()] = value.decode()
            i = end + 1
        else:  # binary form: KEY\n<u64 length><value>\n
            (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
            fields[line.decode()] = data[end + 9 : end + 9 + size].decode()
            i = end + 9 + size + 1
    return fields


def test_journal_handler_sends_structured_fields(tmp_path):
    path = tmp_path / "journal.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    handler = JournalHandler(str(path))
    logger = logging.getLogger("edgecall.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("poor signal: %d of 5", 3, extra={"call_id": "c-42", "event": "poor_signal"})
        one = parse_journal(server.recv(65536))
        logger.error("two\nlines", extra={"call_id": "c-42"})
        two = parse_journal(server.recv(65536))
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()
    assert one["MESSAGE"] == "poor signal: 3 of 5"
    assert (one["PRIORITY"], one["CALL_ID"], one["EVENT"]) == ("4", "c-42", "poor_signal")
    assert one["SYSLOG_IDENTIFIER"] == "edgecall"
    assert two["MESSAGE"] == "two\nlines" and two["PRIORITY"] == "3"
    assert "EVENT" not in two


def test_text_formatter_shows_the_call():
    record = logging.LogRecord("edgecall.calls", logging.INFO, __file__, 1, "answered", (), None)
    record.call_id = "c-7"
    assert TextFormatter().format(record).endswith("INFO  edgecall.calls [call c-7] answered")
