"""The box's call history: every call as it happens, in SQLite in the state directory.

What the learning loops read (issue 16; seeds 000 §6, 002, 003): a row per call
(campaign, number, direction, time slot, flow nodes visited, quality summary, the
outcome), a row per caller turn (utterance, emotion, intent, topics, influencing
factor, reply) and a row per prompt (situation, variant, text; then how it was heard:
recorded or synthesized, the voice, cut short). It is
filled from the very messages the call publishes to head office (`RecordingPublisher`
sits in front of the MQTT link), so the history and head office never disagree.

Phone numbers and transcripts are personal data: the file is created 0600, calls older
than `storage.history_days` are deleted (`prune`), and `forget(number)` erases one
person's calls. The schema is versioned (`PRAGMA user_version`) and upgraded by
`MIGRATIONS` in order. WAL with synchronous=FULL: a finished call survives a SIGKILL and
a power cut. A broken database never stops a call: writes that fail are logged, counted
and skipped (`stats()`), and a corrupt file is moved aside, not overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edgecall.dnc import normalise

log = logging.getLogger("edgecall.history")

MIGRATIONS: list[str] = [
    # 1: calls, turns, prompts
    """
    CREATE TABLE calls(
        call_id TEXT PRIMARY KEY,
        started REAL NOT NULL,
        ended REAL,
        direction TEXT,
        number TEXT,
        ref TEXT,
        customer_id TEXT,
        campaign TEXT,
        language TEXT,
        hour INTEGER,
        time_slot TEXT,
        nodes TEXT NOT NULL DEFAULT '[]',
        quality_samples INTEGER NOT NULL DEFAULT 0,
        quality_min_dbm REAL,
        quality_mean_dbm REAL,
        outcome TEXT,
        agreed INTEGER,
        end_reason TEXT,
        factor_topic TEXT,
        turns INTEGER,
        final_emotion INTEGER,
        final_intent INTEGER,
        outcome_json TEXT
    );
    CREATE INDEX calls_by_number ON calls(number);
    CREATE INDEX calls_by_campaign ON calls(campaign, started);
    CREATE TABLE turns(
        call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
        turn INTEGER NOT NULL,
        utterance TEXT NOT NULL,
        emotion REAL,
        emotion_tendency INTEGER,
        emotion_sources TEXT,
        intent REAL,
        intent_tendency INTEGER,
        topics TEXT NOT NULL DEFAULT '[]',
        factor TEXT,
        situation TEXT,
        answer TEXT,
        reply TEXT,
        PRIMARY KEY (call_id, turn)
    );
    CREATE TABLE prompts(
        call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        situation TEXT NOT NULL,
        variant TEXT,
        text TEXT,
        source TEXT,
        voice TEXT,
        cut_short INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (call_id, seq)
    );
    """,
    # 2: product introductions learned from failure factors (issue 16 part 2)
    """
    CREATE TABLE intro_changes(
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        topic TEXT NOT NULL,
        text TEXT NOT NULL,
        evidence TEXT NOT NULL,
        at REAL NOT NULL,
        reverted_at REAL
    );
    CREATE INDEX intro_changes_by_campaign ON intro_changes(campaign, id);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
DEFAULT_VARIANT = "default"  # prompts of a campaign that has no variants (issue 16 part 3)


class TimeSlots(Protocol):
    """The `assist.time_slots` entries (name, "HH:MM" start and end)."""

    name: str
    start: str
    end: str


class HistoryError(Exception):
    """The history database cannot be opened (the message says why and what was done)."""


class History:
    """One SQLite file; use from one thread (the daemon's event loop)."""

    def __init__(
        self,
        path: Path,
        *,
        keep_days: int,
        slots: Iterable[TimeSlots] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.keep_days = keep_days
        self._slots = [(s.name, s.start, s.end) for s in slots]
        self._clock = clock
        self.failed_writes = 0
        self.last_error: str | None = None
        self.moved_aside: Path | None = None
        self._db = self._open()

    # ---------------------------------------------------------------- opening

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._create_private()
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise HistoryError(f"{self.path}: in use by another process ({exc})") from exc
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._clock())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(Path(f"{aside}{suffix}"))
            self.moved_aside = aside
            log.error("call history %s unreadable (%s): moved aside to %s", self.path, exc, aside)
            self._create_private()
            return self._connect()

    def _create_private(self) -> None:
        """An empty file only the daemon's user reads (personal data); SQLite gives its
        -wal and -shm files the same mode."""
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=2.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path}: schema version {version} is newer than this edgecall's "
                    f"{SCHEMA_VERSION}; upgrade edgecall or move the file away"
                )
            for number, script in enumerate(MIGRATIONS[version:], version + 1):
                with db:
                    db.execute("BEGIN")
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={number}")
            db.execute("PRAGMA integrity_check").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    # --------------------------------------------------------------- recording

    def record(self, message: dict[str, Any]) -> None:
        """Take one published message of a call (an event or its outcome); never raises."""
        try:
            self._record(message)
        except (sqlite3.Error, ValueError, TypeError) as exc:
            self.failed_writes += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("call history: %s not recorded: %s", message.get("type"), exc)

    def _record(self, m: dict[str, Any]) -> None:
        call_id = m.get("call_id")
        if not isinstance(call_id, str):
            return
        kind = m.get("type") if m.get("schema") == "edgecall.event/1" else m.get("schema")
        if kind == "call.started":
            started = _ts(m.get("ts")) or self._clock()
            hour, slot = self._slot_of(started)
            remote = m.get("remote")
            try:
                number = normalise(remote) if remote else None
            except ValueError:  # 'anonymous', a name: kept as it came
                number = remote
            self._db.execute(
                "INSERT OR IGNORE INTO calls(call_id, started, direction, number, ref, "
                "customer_id, campaign, language, hour, time_slot) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    call_id,
                    started,
                    m.get("direction"),
                    number,
                    m.get("ref"),
                    m.get("customer_id"),
                    m.get("campaign"),
                    m.get("language"),
                    hour,
                    slot,
                ),
            )
        elif kind == "flow":
            self._append_node(call_id, m.get("node"))
        elif kind == "turn":
            emotion, intent = m.get("emotion") or {}, m.get("intent") or {}
            factor, reply = m.get("factor"), m.get("reply") or {}
            topics = []
            if factor:
                topics = [factor.get("topic"), *factor.get("unanswered_topics", [])]
            self._db.execute(
                "INSERT OR REPLACE INTO turns(call_id, turn, utterance, emotion, "
                "emotion_tendency, emotion_sources, intent, intent_tendency, topics, factor, "
                "situation, answer, reply) SELECT ?,?,?,?,?,?,?,?,?,?,?,?,? WHERE EXISTS "
                "(SELECT 1 FROM calls WHERE call_id = ?)",
                (
                    call_id,
                    m.get("turn"),
                    m.get("utterance") or "",
                    emotion.get("score"),
                    emotion.get("tendency"),
                    json.dumps(emotion.get("sources") or []),
                    intent.get("value"),
                    intent.get("tendency"),
                    json.dumps([t for t in topics if t], ensure_ascii=False),
                    json.dumps(factor, ensure_ascii=False) if factor is not None else None,
                    reply.get("situation"),
                    reply.get("answer"),
                    json.dumps(reply, ensure_ascii=False),
                    call_id,
                ),
            )
            self._append_node(call_id, reply.get("node"))
        elif kind == "prompt":  # what the robot decided to say
            self._db.execute(
                "INSERT OR REPLACE INTO prompts(call_id, seq, situation, variant, text) "
                "SELECT ?,?,?,?,? WHERE EXISTS (SELECT 1 FROM calls WHERE call_id = ?)",
                (
                    call_id,
                    m.get("seq"),
                    m.get("situation") or "",
                    m.get("variant") or DEFAULT_VARIANT,
                    m.get("text"),
                    call_id,
                ),
            )
        elif kind == "prompt.played":  # what the caller heard of it
            self._db.execute(
                "UPDATE prompts SET source = ?, voice = ?, cut_short = ? WHERE rowid = "
                "(SELECT rowid FROM prompts WHERE call_id = ? AND situation = ? AND "
                "source IS NULL ORDER BY seq DESC LIMIT 1)",
                (
                    m.get("source"),
                    m.get("voice"),
                    1 if m.get("ended") == "barge_in" else 0,
                    call_id,
                    m.get("situation") or "",
                ),
            )
        elif kind == "quality":
            levels = [s["dbm"] for s in m.get("samples") or [] if s.get("dbm") is not None]
            if levels:
                self._db.execute(
                    "UPDATE calls SET quality_mean_dbm = (coalesce(quality_mean_dbm, 0) * "
                    "quality_samples + ?) / (quality_samples + ?), quality_min_dbm = "
                    "min(coalesce(quality_min_dbm, ?), ?), quality_samples = "
                    "quality_samples + ? WHERE call_id = ?",
                    (sum(levels), len(levels), min(levels), min(levels), len(levels), call_id),
                )
        elif kind == "edgecall.outcome/1":
            self._db.execute(
                "UPDATE calls SET ended = ?, outcome = ?, agreed = ?, end_reason = ?, "
                "factor_topic = ?, turns = ?, final_emotion = ?, final_intent = ?, "
                "outcome_json = ? WHERE call_id = ?",
                (
                    _ts(m.get("ts")) or self._clock(),
                    m.get("outcome"),
                    1 if m.get("agreed") else 0,
                    m.get("end_reason"),
                    m.get("factor_topic"),
                    m.get("turns"),
                    m.get("final_emotion"),
                    m.get("final_intent"),
                    json.dumps(m, ensure_ascii=False),
                    call_id,
                ),
            )
            self._append_node(call_id, m.get("node"))

    def _append_node(self, call_id: str, node: Any) -> None:
        if not isinstance(node, str):
            return
        row = self._db.execute("SELECT nodes FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if row is None:
            return
        nodes = json.loads(row[0])
        if not nodes or nodes[-1] != node:
            nodes.append(node)
            self._db.execute(
                "UPDATE calls SET nodes = ? WHERE call_id = ?", (json.dumps(nodes), call_id)
            )

    def _slot_of(self, t: float) -> tuple[int, str | None]:
        local = datetime.fromtimestamp(t)
        hhmm = local.strftime("%H:%M")
        slot = next((name for name, a, b in self._slots if a <= hhmm < b), None)
        return local.hour, slot

    # -------------------------------------------------------------- privacy

    def forget(self, number: str) -> list[str]:
        """Erase every call with this number (any spelling); returns their call ids."""
        key = normalise(number)
        with self._db:
            self._db.execute("BEGIN")
            rows = self._db.execute("SELECT call_id FROM calls WHERE number = ?", (key,))
            ids = [r[0] for r in rows]
            self._db.execute("DELETE FROM calls WHERE number = ?", (key,))
        return ids

    def prune(self) -> int:
        """Delete the calls older than the retention; returns how many."""
        cutoff = self._clock() - self.keep_days * 86400
        cur = self._db.execute("DELETE FROM calls WHERE started < ?", (cutoff,))
        if cur.rowcount:
            log.info(
                "call history: %d calls over %d days old deleted", cur.rowcount, self.keep_days
            )
        return cur.rowcount

    # ---------------------------------------------------------------- reading

    def summary(self, campaign: str | None = None) -> dict[str, Any]:
        """Per campaign and prompt variant: calls, outcomes, conversion, top failure
        factors (the body of `edgecall stats` and of the `stats` command)."""
        where, args = ("WHERE campaign = ?", (campaign,)) if campaign else ("", ())
        campaigns: dict[str, Any] = {}
        rows = self._db.execute(
            f"SELECT coalesce(campaign, '-'), outcome, count(*), sum(agreed) FROM calls {where} "
            "GROUP BY 1, 2",
            args,
        )
        for name, outcome, count, agreed in rows:
            c = campaigns.setdefault(name, {"calls": 0, "agreed": 0, "outcomes": {}})
            c["calls"] += count
            c["agreed"] += agreed or 0
            c["outcomes"][outcome or "in_progress"] = count
        for name, c in campaigns.items():
            c["conversion"] = round(c["agreed"] / c["calls"], 4) if c["calls"] else 0.0
            c["top_factors"] = [
                {"topic": topic, "calls": n}
                for topic, n in self._db.execute(
                    "SELECT factor_topic, count(*) FROM calls WHERE coalesce(campaign, '-') = ? "
                    "AND outcome = 'failed' AND factor_topic IS NOT NULL GROUP BY 1 "
                    "ORDER BY 2 DESC, 1 LIMIT 5",
                    (name,),
                )
            ]
            c["variants"] = {
                variant: {
                    "calls": calls,
                    "agreed": agreed or 0,
                    "conversion": round((agreed or 0) / calls, 4) if calls else 0.0,
                }
                for variant, calls, agreed in self._db.execute(
                    "SELECT p.variant, count(DISTINCT c.call_id), "
                    "count(DISTINCT CASE WHEN c.agreed = 1 THEN c.call_id END) "
                    "FROM calls c JOIN prompts p USING (call_id) "
                    "WHERE coalesce(c.campaign, '-') = ? GROUP BY 1 ORDER BY 1",
                    (name,),
                )
            }
        return {"campaigns": campaigns, "kept_days": self.keep_days}

    def failure_factors(self, campaign: str, limit: int, since: float = 0.0) -> list[str | None]:
        """The factor topic of each of the campaign's latest `limit` failed calls that
        ended after `since` (None where the factor was no topic, or none was found)."""
        rows = self._db.execute(
            "SELECT factor_topic FROM calls WHERE campaign = ? AND outcome = 'failed' "
            "AND ended > ? ORDER BY ended DESC LIMIT ?",
            (campaign, since, limit),
        )
        return [r[0] for r in rows]

    def learned_intro(self, campaign: str) -> dict[str, Any] | None:
        """The campaign's product introduction in force, as learned (None: the config's)."""
        row = self._db.execute(
            "SELECT id, topic, text, evidence, at FROM intro_changes WHERE campaign = ? "
            "ORDER BY id DESC LIMIT 1",
            (campaign,),
        ).fetchone()
        if row is None or self.last_revert(campaign) >= row[4]:
            return None
        return {"topic": row[1], "text": row[2], "evidence": json.loads(row[3]), "at": row[4]}

    def learn_intro(self, campaign: str, topic: str, text: str, evidence: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO intro_changes(campaign, topic, text, evidence, at) VALUES (?,?,?,?,?)",
            (campaign, topic, text, json.dumps(evidence, ensure_ascii=False), self._clock()),
        )

    def revert_intro(self, campaign: str) -> bool:
        """Back to the configured introduction; False when none was learned."""
        if self.learned_intro(campaign) is None:
            return False
        self._db.execute(
            "UPDATE intro_changes SET reverted_at = ? WHERE campaign = ? AND reverted_at IS NULL",
            (self._clock(), campaign),
        )
        return True

    def last_revert(self, campaign: str) -> float:
        """When the campaign's learned introduction was last reverted (0: never)."""
        row = self._db.execute(
            "SELECT max(reverted_at) FROM intro_changes WHERE campaign = ?", (campaign,)
        ).fetchone()
        return row[0] or 0.0

    def stats(self) -> dict[str, Any]:
        """Health, for <prefix>/stats."""
        try:
            count = self._db.execute("SELECT count(*) FROM calls").fetchone()[0]
        except sqlite3.Error as exc:
            count, self.last_error = None, f"{type(exc).__name__}: {exc}"
        return {
            "calls": count,
            "failed_writes": self.failed_writes,
            "last_error": self.last_error,
        }


def _ts(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class RecordingPublisher:
    """The publisher a call talks to: each message goes into the history, then to the link."""

    def __init__(self, history: History, publisher: Any) -> None:
        self.history = history
        self._publisher = publisher

    async def publish_event(self, message: dict[str, Any]) -> str:
        self.history.record(message)
        return await self._publisher.publish_event(message)

    async def publish_outcome(self, message: dict[str, Any]) -> str:
        self.history.record(message)
        return await self._publisher.publish_outcome(message)

    async def publish_prompt(self, extension: str, message: dict[str, Any]) -> str:
        return await self._publisher.publish_prompt(extension, message)  # the agent's, not kept
