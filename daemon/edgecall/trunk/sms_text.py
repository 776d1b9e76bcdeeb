"""How SMS text is encoded for AT text mode and split into parts. Pure.

Character set: "GSM" is used only when every character has the same byte in
ASCII and in the GSM 03.38 default alphabet (letters, digits, space, LF and
most punctuation). Modems disagree about how TE bytes map onto GSM for the
other characters ('@' is 0x00, '$' 0x02, '_' 0x11, extension characters need
ESC, which aborts text entry), so anything else, Chinese included, goes as
"UCS2": the number and the text are sent as hex of UTF-16BE ('您好' -> '60A8597D').

Long messages: numbered text-mode parts, not concatenated PDUs. Text mode has
no portable way to carry the concatenation header, so a long text becomes
independent SMS that each start with "(i/n) ". A text that fits one SMS (160
GSM characters, 70 UCS2 units) goes unchanged; otherwise each part, prefix
included, stays within the concatenated-SMS budgets of 153 / 67, so the part
count equals what a PDU-mode sender would use.
"""

from __future__ import annotations

import re
import string
from typing import Literal

Charset = Literal["GSM", "UCS2"]

GSM_SAFE = frozenset(string.ascii_letters + string.digits + " \n!\"#%&'()*+,-./:;<=>?")
SINGLE_LIMIT = {"GSM": 160, "UCS2": 70}
PART_LIMIT = {"GSM": 153, "UCS2": 67}

_NUMBER = re.compile(r"^\+?\d{3,20}$")


def normalise_text(text: str) -> str:
    """CR would end text entry on some modems: line breaks become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalise_number(number: str) -> str:
    """'+86 138-0000-0000' -> '+8613800000000'; raises ValueError if not a phone number."""
    compact = re.sub(r"[\s\-().]", "", number)
    if not _NUMBER.match(compact):
        raise ValueError(f"not a phone number: {number!r}")
    return compact


def choose_charset(text: str) -> Charset:
    return "GSM" if set(text) <= GSM_SAFE else "UCS2"


def units(text: str, charset: Charset) -> int:
    """Length as the SMS counts it: characters in GSM, UTF-16 code units in UCS2."""
    return len(text) if charset == "GSM" else len(text.encode("utf-16-be")) // 2


def ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def split_parts(text: str, charset: Charset) -> list[str]:
    """The SMS bodies to send, in order (see the module docstring)."""
    if units(text, charset) <= SINGLE_LIMIT[charset]:
        return [text]
    count = 2
    while True:
        parts = _split(text, charset, count)
        if len(parts) <= count:
            total = len(parts)
            return [f"({i}/{total}) {p}" for i, p in enumerate(parts, 1)]
        count = len(parts)


def _split(text: str, charset: Charset, count: int) -> list[str]:
    room = PART_LIMIT[charset] - len(f"({count}/{count}) ")
    chunks: list[str] = []
    rest = text
    while rest:
        take = _fit(rest, charset, room)
        if take < len(rest):
            space = rest.rfind(" ", 0, take + 1)
            if space > take // 2:
                take = space + 1
        chunks.append(rest[:take].rstrip(" ") or rest[:take])
        rest = rest[take:]
    return chunks


def _fit(text: str, charset: Charset, room: int) -> int:
    """How many characters of `text` fit in `room` units (never half a surrogate pair)."""
    used = 0
    for i, ch in enumerate(text):
        cost = 1 if charset == "GSM" or ord(ch) < 0x10000 else 2
        if used + cost > room:
            return i
        used += cost
    return len(text)
