"""The do-not-call list: numbers whose owners asked never to be called again.

Kept in SQLite in the state directory (`storage.dnc_file`, default `dnc.sqlite`)
beside the dial queue, so it survives restarts and power cuts. A call adds the
caller's number when they say "stop calling me" (source `caller`); head office
adds, removes and lists numbers with the `dnc-add`, `dnc-remove` and `dnc-list`
commands (source `head_office`; `DncCommands`). The dialer never places a call
to a listed number (`DialQueue.due_split`): the item is dropped and reported.

Numbers are stored and compared in one canonical spelling (`normalise`), so
`+86 138-0013-8000`, `008613800138000` and `sip:+8613800138000@pbx` are one entry.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from edgecall.mqtt.commands import CommandError, CommandRequest

Source = Literal["caller", "head_office"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dnc(
    number TEXT PRIMARY KEY,
    t REAL NOT NULL,
    reason TEXT NOT NULL,
    call_id TEXT,
    source TEXT NOT NULL
);
"""

MAX_PAGE = 1000
# The user part of a SIP/SIPS or tel URI, bare or inside a name-addr ('"Bob" <sip:...>'):
# it ends at the host ('@'), a password (':'), parameters (';'), headers ('?') or '>'.
_URI = re.compile(r"(?:^|<)\s*(?:sips?|tel):([^@;:?>]*)", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s\-.()]")
_LOCAL = re.compile(r"^[0-9*#]+$")
_INTERNATIONAL = re.compile(r"^[1-9][0-9]{0,14}$")
MAX_LENGTH = 32  # as the dial command's numbers (schemas/command.json)


def same_number(value: object, key: str) -> bool:
    """`value` is a spelling of the normalised number `key` (False for a non-number)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        return normalise(value) == key
    except ValueError:
        return False


def normalise(number: str) -> str:
    """The canonical spelling of a phone number, the key of the list.

    The rule, applied in order:

    1. A SIP, SIPS or tel URI (also inside `"Name" <...>`) stands for its user part:
       `sip:+8613800138000@pbx;user=phone` -> `+8613800138000`; percent-escapes are
       decoded.
    2. Unicode compatibility forms are folded (NFKC), so full-width digits and
       `＋` typed on a Chinese keyboard count as `0-9` and `+`.
    3. Spaces, `-`, `.`, `(` and `)` are dropped; in an international number (step 4)
       a `(0)` goes first (`+44 (0)20 7946 0000`: the trunk prefix dialled only within
       the country, written in parentheses; ITU-T E.123 advises against it).
    4. A leading `+` or `00` marks an international number and becomes `+`: `00` is
       the international prefix ITU-T E.164 recommends (China, most of Europe...).
       What follows must be an E.164 number: 1 to 15 digits, the first (the country
       code) not 0. `011` (North America) is NOT treated as a prefix.
    5. Otherwise the number is kept as written: digits, and `*` / `#` for the feature
       codes a PBX takes.

    Nothing country-specific is assumed: a national spelling (`13800138000`) and an
    international one (`+8613800138000`) of the same phone are different keys,
    because which country code and trunk prefix a national number implies depends
    on the PBX and the country the box is in. List both spellings if head office
    dials both. Raises ValueError (saying why) for anything else: empty input, no
    digits, letters, a misplaced `+`, more than 32 characters.
    """
    if not isinstance(number, str):
        raise ValueError(f"a phone number must be a string, not {type(number).__name__}")
    text = number.strip()
    uri = _URI.search(text)
    if uri:
        text = unquote(uri.group(1))
    text = unicodedata.normalize("NFKC", text).strip()
    if text.startswith(("+", "00")):
        text = text.replace("(0)", "")
    text = _SEPARATORS.sub("", text)
    if not text:
        raise ValueError(f"{number!r} is not a phone number: it is empty")
    if text.startswith("+") or text.startswith("00"):
        digits = text[1:] if text.startswith("+") else text[2:]
        if not _INTERNATIONAL.match(digits):
            raise ValueError(
                f"{number!r} is not a phone number: after the international prefix "
                "('+' or '00') E.164 allows only 1 to 15 digits, the first not 0"
            )
        return "+" + digits
    if not _LOCAL.match(text):
        raise ValueError(
            f"{number!r} is not a phone number: only digits, '*', '#', a leading '+' or "
            "'00', and the separators ' -.()' are allowed"
        )
    if not any(c.isdigit() for c in text):
        raise ValueError(f"{number!r} is not a phone number: it has no digits")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"{number!r} is not a phone number: longer than {MAX_LENGTH} characters")
    return text


@dataclass(frozen=True)
class DncEntry:
    number: str  # canonical spelling (`normalise`)
    t: float  # when it was added, seconds since the epoch
    reason: str
    call_id: str | None  # the call in which the caller asked, if any
    source: str  # "caller" or "head_office"

    def to_json(self) -> dict[str, Any]:
        """As head office sees it (dnc-list, dial-skipped messages)."""
        return {
            "number": self.number,
            "added": iso(self.t),
            "reason": self.reason,
            "call_id": self.call_id,
            "source": self.source,
        }


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DoNotCallList:
    """The list on disk. Every method normalises the numbers it is given (`normalise`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection, guarded: calls may add from another thread than the dialer.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a caller's request survives power loss
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(
        self,
        number: str,
        *,
        reason: str,
        call_id: str | None,
        t: float,
        source: Source = "caller",
    ) -> bool:
        """List `number`; True when newly listed. Idempotent: a number already listed
        keeps its first entry (time, reason, call, source). ValueError for a bad number."""
        key = normalise(number)
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO dnc(number, t, reason, call_id, source)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, t, reason, call_id, source),
            )
        return cur.rowcount == 1

    def add_many(
        self, numbers: Iterable[str], *, reason: str, t: float, source: Source = "head_office"
    ) -> list[bool]:
        """`add` for each number, in one transaction; every number is checked first, so one
        bad number (ValueError) adds none."""
        keys = [normalise(n) for n in numbers]
        added = []
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for key in keys:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO dnc(number, t, reason, call_id, source)"
                    " VALUES (?, ?, ?, NULL, ?)",
                    (key, t, reason, source),
                )
                added.append(cur.rowcount == 1)
        return added

    def remove(self, number: str) -> bool:
        """Take `number` off the list; True when it was listed."""
        return self.remove_many([number]) == [True]

    def remove_many(self, numbers: Iterable[str]) -> list[bool]:
        """`remove` for each number, in one transaction (a bad number removes none)."""
        keys = [normalise(n) for n in numbers]
        removed = []
        with self._lock, self._db:
            self._db.execute("BEGIN")
            for key in keys:
                cur = self._db.execute("DELETE FROM dnc WHERE number = ?", (key,))
                removed.append(cur.rowcount == 1)
        return removed

    def get(self, number: str) -> DncEntry | None:
        """The entry of `number`; None when it is not listed or is not a phone number."""
        try:
            key = normalise(number)
        except ValueError:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT number, t, reason, call_id, source FROM dnc WHERE number = ?", (key,)
            ).fetchone()
        return DncEntry(*row) if row else None

    def contains(self, number: str) -> bool:
        """Whether `number` is listed. Something that is not a phone number cannot be
        listed: False, not ValueError, so the dialer can ask about anything it holds."""
        return self.get(number) is not None

    def entries(self, limit: int = 100, after: str | None = None) -> list[DncEntry]:
        """One page of up to `limit` (1..1000) entries in order of their canonical number,
        starting after the number `after` (the last one of the previous page; None for the
        first page). Numbers added or removed meanwhile never shift the pages."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}, not {limit}")
        return self._page(limit, after)

    def _page(self, limit: int, after: str | None) -> list[DncEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT number, t, reason, call_id, source FROM dnc"
                " WHERE number > ? ORDER BY number LIMIT ?",
                (after or "", limit),
            ).fetchall()
        return [DncEntry(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dnc").fetchone()[0])


# --- head office's commands ----------------------------------------------------------

HEAD_OFFICE_REASON = "requested by head office"


class DncCommands:
    """Handlers of `dnc-add`, `dnc-remove` and `dnc-list` (args: schemas/command.json)."""

    def __init__(self, dnc: DoNotCallList, clock: Callable[[], float] = time.time) -> None:
        self.dnc = dnc
        self._clock = clock

    def register(self, link: Any) -> None:
        """Register the three commands on an `MqttLink` (or a `CommandRegistry`)."""
        reg = getattr(link, "register_command", None) or link.register
        reg("dnc-add", self.add)
        reg("dnc-remove", self.remove)
        reg("dnc-list", self.list)

    async def add(self, request: CommandRequest) -> dict[str, Any]:
        numbers = request.args["numbers"]
        _check_numbers(numbers)
        reason = request.args.get("reason") or HEAD_OFFICE_REASON
        added = self.dnc.add_many(numbers, reason=reason, t=self._clock(), source="head_office")
        new = sum(added)
        return {"added": new, "already_listed": len(added) - new, "count": self.dnc.count()}

    async def remove(self, request: CommandRequest) -> dict[str, Any]:
        numbers = request.args["numbers"]
        _check_numbers(numbers)
        removed = self.dnc.remove_many(numbers)
        gone = sum(removed)
        return {"removed": gone, "not_listed": len(removed) - gone, "count": self.dnc.count()}

    async def list(self, request: CommandRequest) -> dict[str, Any]:
        args = request.args
        if "number" in args:
            _check_numbers([args["number"]], field="number")
            entry = self.dnc.get(args["number"])
            entries = [entry] if entry else []
            more = False
        else:
            limit = args.get("limit", 100)
            # One more than asked: whether another page follows, without a second query.
            entries = self.dnc._page(limit + 1, args.get("after"))
            more = len(entries) > limit
            entries = entries[:limit]
        return {
            "entries": [e.to_json() for e in entries],
            "count": self.dnc.count(),
            "next_after": entries[-1].number if more else None,
        }


def _check_numbers(numbers: list[str], field: str = "numbers") -> None:
    """Refuse the whole command, naming every bad number (up to 5), before changing anything."""
    problems = []
    for i, number in enumerate(numbers):
        try:
            normalise(number)
        except ValueError as exc:
            where = field if field == "number" else f"{field}/{i}"
            problems.append(f"{where}: {exc}")
    if problems:
        extra = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CommandError("invalid_number", "; ".join(problems[:5]) + extra)
