"""Outbound calls waiting to be placed: dial lists from head office, and redials.

Kept in SQLite in the state directory, so a restart loses neither a 10,000-number
dial list nor a redial due in ten minutes. The appliance takes due items as call
capacity frees up (`due`), and head office can cancel redials (`cancel`).
Numbers on the do-not-call list (`edgecall.dnc`) are never dialled: `due_split`
sets their items apart, to be dropped and reported (`skipped_report`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgecall.dnc import normalise, same_number

if TYPE_CHECKING:
    from edgecall.dnc import DncEntry

Kind = Literal["dial", "redial"]
DIAL_SKIPPED_SCHEMA = "edgecall.dial-skipped/1"
DIAL_SKIPPED_SUBTOPIC = "dials"  # <prefix>/dials
DIALS_FILE = "dials.sqlite"  # in storage.state_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dials(
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT,
    campaign TEXT,
    language TEXT,
    origin_call_id TEXT,
    attempt INTEGER NOT NULL,
    customer_id TEXT,
    customer_group TEXT
);
CREATE INDEX IF NOT EXISTS dials_by_due ON dials(due, id);
CREATE TABLE IF NOT EXISTS work_placed(
    item_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
"""
PLACED_KEPT_S = 7 * 86400  # a broker redelivers within hours, not weeks
# Columns added after the first release, for queues an older edgecall wrote.
_ADDED_COLUMNS = ("customer_id TEXT", "customer_group TEXT")
_COLUMNS = (
    "id, number, due, kind, ref, campaign, language, origin_call_id, attempt, "
    "customer_id, customer_group"
)


@dataclass(frozen=True)
class DialItem:
    id: int
    number: str
    due: float  # seconds since the epoch
    kind: Kind
    ref: str | None
    campaign: str | None
    language: str | None
    origin_call_id: str | None  # for a redial: the call that asked for it
    attempt: int  # 1 for a first call, 2 for the first redial...
    customer_id: str | None = None  # head office's id of the customer
    group: str | None = None  # the customer group (prompt variants are judged per group)
    interests: dict[str, Any] | None = None  # a campaign customer's predicted interests


class DialQueue:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        known = {row[1] for row in self._db.execute("PRAGMA table_info(dials)")}
        for column in _ADDED_COLUMNS:
            if column.split()[0] not in known:
                self._db.execute(f"ALTER TABLE dials ADD COLUMN {column}")
        self._db.execute("DELETE FROM work_placed WHERE at < ?", (time.time() - PLACED_KEPT_S,))

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        number: str,
        due: float,
        *,
        kind: Kind = "dial",
        ref: str | None = None,
        campaign: str | None = None,
        language: str | None = None,
        origin_call_id: str | None = None,
        attempt: int = 1,
        customer_id: str | None = None,
        group: str | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO dials(number, due, kind, ref, campaign, language, origin_call_id, attempt,"
            " customer_id, customer_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                due,
                kind,
                ref,
                campaign,
                language,
                origin_call_id,
                attempt,
                customer_id,
                group,
            ),
        )
        return int(cur.lastrowid)

    def add_many(self, items: list[dict[str, Any]], due: float) -> int:
        """A dial list, all due now, in the order given; one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            for item in items:
                self._db.execute(
                    "INSERT INTO dials(number, due, kind, ref, campaign, language, attempt,"
                    " customer_id, customer_group) VALUES (?, ?, 'dial', ?, ?, ?, 1, ?, ?)",
                    (
                        item["number"],
                        due,
                        item.get("ref"),
                        item.get("campaign"),
                        item.get("language"),
                        item.get("customer_id"),
                        item.get("group"),
                    ),
                )
        return len(items)

    def schedule_redial(
        self, outcome: dict[str, Any], *, attempt: int, max_attempts: int
    ) -> int | None:
        """Queue the redial a `redial_scheduled` outcome asks for; None past max_attempts."""
        if outcome.get("outcome") != "redial_scheduled" or not outcome.get("number"):
            return None
        if attempt + 1 > max_attempts:
            return None
        due = datetime.fromisoformat(outcome["due"].replace("Z", "+00:00")).timestamp()
        return self.add(
            outcome["number"],
            due,
            kind="redial",
            ref=outcome.get("ref"),
            campaign=outcome.get("campaign"),
            language=outcome.get("language"),
            origin_call_id=outcome.get("call_id"),
            attempt=attempt + 1,
            customer_id=outcome.get("customer_id"),
            group=outcome.get("customer_group"),
        )

    def due(self, now: float, limit: int) -> list[DialItem]:
        """Up to `limit` items due by `now`, earliest first; they stay queued until `remove`."""
        if limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM dials WHERE due <= ? ORDER BY due, id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [DialItem(*row) for row in rows]

    def due_split(
        self, now: float, limit: int, listed: Callable[[str], object], kind: Kind | None = None
    ) -> tuple[list[DialItem], list[DialItem]]:
        """Like `due`, with the do-not-call list applied: (up to `limit` items to dial,
        the due items among and ahead of them whose number `listed` says is barred).

        Barred items take no capacity, so a run of them never holds back the numbers
        behind them. `kind` keeps to dial-list items or to redials. Nothing is removed:
        the caller removes each item once it has dialled it or reported it skipped, so a
        crash in between loses neither.
        """
        if limit <= 0:
            return [], []
        ready: list[DialItem] = []
        barred: list[DialItem] = []
        cur = self._db.execute(
            f"SELECT {_COLUMNS} FROM dials WHERE due <= ? AND kind = coalesce(?, kind) "
            "ORDER BY due, id",
            (now, kind),
        )
        try:
            while len(ready) < limit and (rows := cur.fetchmany(max(limit, 64))):
                for row in rows:
                    item = DialItem(*row)
                    if listed(item.number):
                        barred.append(item)
                    elif len(ready) < limit:
                        ready.append(item)
                    else:
                        break
        finally:
            cur.close()
        return ready, barred

    def remove(self, item_id: int) -> None:
        self._db.execute("DELETE FROM dials WHERE id = ?", (item_id,))

    def cancel_redials(
        self, *, call_id: str | None = None, number: str | None = None, all: bool = False
    ) -> int:
        """Remove scheduled redials (never first dials); returns how many were removed."""
        if all:
            cur = self._db.execute("DELETE FROM dials WHERE kind = 'redial'")
        elif call_id is not None:
            cur = self._db.execute(
                "DELETE FROM dials WHERE kind = 'redial' AND origin_call_id = ?", (call_id,)
            )
        elif number is not None:
            cur = self._db.execute(
                "DELETE FROM dials WHERE kind = 'redial' AND number = ?", (number,)
            )
        else:
            raise ValueError("name a call_id, a number, or all")
        return cur.rowcount

    def forget(self, number: str) -> int:
        """Remove every queued call or redial of `number` (any spelling); how many."""
        key = normalise(number)
        rows = self._db.execute("SELECT id, number FROM dials").fetchall()
        ids = [item_id for item_id, n in rows if same_number(n, key)]
        for item_id in ids:
            self._db.execute("DELETE FROM dials WHERE id = ?", (item_id,))
        return len(ids)

    def mark_placed(self, item_id: str) -> None:
        """Remember a site work item as placed (before dialling it): a broker that gives
        the same item again after a reconnect gets it acknowledged, not dialled twice."""
        self._db.execute(
            "INSERT OR REPLACE INTO work_placed(item_id, at) VALUES (?, ?)", (item_id, time.time())
        )

    def placed_before(self, item_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM work_placed WHERE item_id = ?", (item_id,))
        return row.fetchone() is not None

    def next_due(self) -> float | None:
        row = self._db.execute("SELECT MIN(due) FROM dials").fetchone()
        return row[0]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT kind, COUNT(*) FROM dials GROUP BY kind").fetchall()
        return {"dial": 0, "redial": 0, **dict(rows)}


def skipped_report(item: DialItem, entry: DncEntry | None) -> dict[str, Any]:
    """Body of the `edgecall.dial-skipped/1` message (schemas/dial-skipped.json) saying
    that `item` was dropped unplaced because its number is on the do-not-call list."""
    return {
        "reason": "do_not_call",
        "number": item.number,
        "kind": item.kind,
        "ref": item.ref,
        "campaign": item.campaign,
        "language": item.language,
        "origin_call_id": item.origin_call_id,
        "attempt": item.attempt,
        "customer_id": item.customer_id,
        "group": item.group,
        "due": datetime.fromtimestamp(item.due, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "dnc": entry.to_json() if entry is not None else None,
    }
