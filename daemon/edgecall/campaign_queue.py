"""A campaign run over a customer list: every number's attempts and its one final state.

Kept in SQLite beside the dial queue (dials.sqlite), so a restart loses no number, no
attempt and no decision: a call the box was in when it died counts as an attempt and
its number is due again. Head office starts, pauses, resumes and stops a run; stopping
gives every number not yet finished the final state `stopped`. When to call and what
follows a call are the pure rules of `edgecall.rules.pacing`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgecall.config.dialing import DialingConfig
from edgecall.messages import parse_ts
from edgecall.rules.pacing import BARRED, GIVEN_UP, STOPPED, after_call

State = Literal["running", "paused", "stopped"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign_runs(
    campaign TEXT PRIMARY KEY,
    list TEXT NOT NULL,
    state TEXT NOT NULL,
    started REAL NOT NULL,
    changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_numbers(
    id INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    number TEXT NOT NULL,
    dial TEXT NOT NULL,
    customer_id TEXT,
    customer_group TEXT,
    language TEXT,
    time_zone TEXT,
    slots TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_due REAL NOT NULL,
    call_id TEXT,
    final TEXT,
    last_reason TEXT,
    UNIQUE (campaign, number)
);
CREATE INDEX IF NOT EXISTS campaign_numbers_due ON campaign_numbers(campaign, final, next_due);
CREATE INDEX IF NOT EXISTS campaign_numbers_call ON campaign_numbers(call_id);
"""
_ENTRY = (
    "id, campaign, dial, number, customer_id, customer_group, language, time_zone, slots, attempts"
)


@dataclass(frozen=True)
class Entry:
    id: int
    campaign: str
    dial: str  # as the PBX expects it
    number: str  # normalised
    customer_id: str | None
    group: str | None
    language: str | None
    time_zone: str | None
    slots: list[str]  # the customer's preferred answer slots (assist.time_slots names)
    attempts: int


class CampaignQueue:
    def __init__(self, path: Path, now: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # the box died during these calls: each counts as an attempt, and is due again
        self._db.execute(
            "UPDATE campaign_numbers SET call_id = NULL, next_due = ?, last_reason = "
            "'interrupted' WHERE call_id IS NOT NULL AND final IS NULL",
            (now,),
        )

    def close(self) -> None:
        self._db.close()

    # --------------------------------------------------------------- runs

    def start(
        self, campaign: str, list_name: str, customers: Iterable[dict[str, Any]], now: float
    ) -> int:
        """Run the campaign over these customers (from the history); numbers already in
        the run keep their attempts and state. Returns how many numbers were added."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO campaign_runs(campaign, list, state, started, changed) "
                "VALUES (?,?,'running',?,?) ON CONFLICT (campaign) DO UPDATE SET "
                "list = excluded.list, state = 'running', changed = excluded.changed",
                (campaign, list_name, now, now),
            )
            before = self._count(campaign)
            self._db.executemany(
                "INSERT OR IGNORE INTO campaign_numbers(campaign, number, dial, customer_id, "
                "customer_group, language, time_zone, slots, next_due) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        campaign,
                        c["number"],
                        c["dial"],
                        c.get("customer_id"),
                        c.get("customer_group"),
                        c.get("language"),
                        c.get("time_zone"),
                        json.dumps(c.get("answer_slots") or []),
                        now,
                    )
                    for c in customers
                ],
            )
            return self._count(campaign) - before

    def set_state(self, campaign: str, state: State, now: float) -> bool:
        """False when the campaign was never started."""
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "UPDATE campaign_runs SET state = ?, changed = ? WHERE campaign = ?",
                (state, now, campaign),
            )
            if state == "stopped":  # a number being called now ends with its call
                self._db.execute(
                    "UPDATE campaign_numbers SET final = ? WHERE campaign = ? AND final IS NULL "
                    "AND call_id IS NULL",
                    (STOPPED, campaign),
                )
        return cur.rowcount > 0

    def state(self, campaign: str) -> State | None:
        row = self._db.execute(
            "SELECT state FROM campaign_runs WHERE campaign = ?", (campaign,)
        ).fetchone()
        return row[0] if row else None

    def running(self) -> list[str]:
        rows = self._db.execute("SELECT campaign FROM campaign_runs WHERE state = 'running'")
        return [r[0] for r in rows]

    # ------------------------------------------------------------- numbers

    def due(self, campaign: str, now: float, limit: int) -> list[Entry]:
        """Up to `limit` of the run's numbers due by `now` and not being called."""
        if limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {_ENTRY} FROM campaign_numbers WHERE campaign = ? AND final IS NULL AND "
            "call_id IS NULL AND next_due <= ? ORDER BY next_due, id LIMIT ?",
            (campaign, now, limit),
        )
        return [Entry(*r[:8], json.loads(r[8]), r[9]) for r in rows]

    def reschedule(self, entry_id: int, at: float) -> None:
        self._db.execute("UPDATE campaign_numbers SET next_due = ? WHERE id = ?", (at, entry_id))

    def dialling(self, entry_id: int, call_id: str) -> None:
        self._db.execute(
            "UPDATE campaign_numbers SET call_id = ?, attempts = attempts + 1 WHERE id = ?",
            (call_id, entry_id),
        )

    def barred(self, entry_id: int) -> None:
        self._db.execute("UPDATE campaign_numbers SET final = ? WHERE id = ?", (BARRED, entry_id))

    def finished(
        self, call_id: str, outcome: dict[str, Any], now: float, cfg: DialingConfig
    ) -> str | None:
        """Record the call's outcome for its number: due again (after a non-answer, or
        when its redial comes due), or its final state. The campaign's name when the call
        was one of a campaign's, else None."""
        row = self._db.execute(
            "SELECT id, campaign, attempts FROM campaign_numbers WHERE call_id = ? AND "
            "final IS NULL",
            (call_id,),
        ).fetchone()
        if row is None:
            return None
        entry_id, campaign, attempts = row
        kind, reason = outcome.get("outcome", "error"), outcome.get("reason")
        step = after_call(kind, reason, attempts, now, cfg, parse_ts(outcome.get("due")))
        stopped = self.state(campaign) == "stopped"
        final = step.final or (STOPPED if stopped else None)
        self._db.execute(
            "UPDATE campaign_numbers SET call_id = NULL, final = ?, next_due = ?, last_reason = ? "
            "WHERE id = ?",
            (final, step.retry_at or now, reason or kind, entry_id),
        )
        return campaign

    def unplaced(self, entry_id: int, now: float, cfg: DialingConfig) -> None:
        """The SIP stack could not send the call: an attempt that failed."""
        (attempts,) = self._db.execute(
            "UPDATE campaign_numbers SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
            (entry_id,),
        ).fetchone()
        step = after_call("not_connected", "failed", attempts, now, cfg)
        self._db.execute(
            "UPDATE campaign_numbers SET final = ?, next_due = ?, last_reason = 'unplaced' "
            "WHERE id = ?",
            (step.final, step.retry_at or now, entry_id),
        )

    def active(self, campaign: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM campaign_numbers WHERE campaign = ? AND call_id IS NOT NULL",
            (campaign,),
        ).fetchone()
        return row[0]

    def progress(self, campaign: str) -> dict[str, Any] | None:
        """What head office sees of a run (schemas/campaign-progress.json)."""
        run = self._db.execute(
            "SELECT list, state, started FROM campaign_runs WHERE campaign = ?", (campaign,)
        ).fetchone()
        if run is None:
            return None
        finals = dict(
            self._db.execute(
                "SELECT final, count(*) FROM campaign_numbers WHERE campaign = ? AND final IS "
                "NOT NULL GROUP BY 1",
                (campaign,),
            ).fetchall()
        )
        (numbers, dialled, calling, attempts) = self._db.execute(
            "SELECT count(*), count(CASE WHEN attempts > 0 THEN 1 END), "
            "count(call_id), coalesce(sum(attempts), 0) FROM campaign_numbers WHERE campaign = ?",
            (campaign,),
        ).fetchone()
        not_answered = {GIVEN_UP, BARRED, STOPPED}
        return {
            "campaign": campaign,
            "list": run[0],
            "state": run[1],
            "numbers": numbers,
            "dialled": dialled,
            "calls": attempts,
            "calling_now": calling,
            "answered": sum(n for f, n in finals.items() if f not in not_answered),
            "finals": finals,
            "remaining": numbers - sum(finals.values()),
        }

    def _count(self, campaign: str) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM campaign_numbers WHERE campaign = ?", (campaign,)
        ).fetchone()
        return row[0]
