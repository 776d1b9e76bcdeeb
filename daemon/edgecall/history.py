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

from edgecall.customers import Customer
from edgecall.dnc import normalise
from edgecall.messages import parse_ts
from edgecall.rules.variants import DEFAULT_GROUP, VariantStats

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
    # 3: prompt variants per customer group, and scripts composed for groups (part 3).
    # variant_stats and group_scripts hold counts and prompt texts, no personal data: they
    # outlive the calls they were learned from (retention, forget).
    """
    ALTER TABLE calls ADD COLUMN customer_group TEXT;
    CREATE TABLE node_variants(
        call_id TEXT NOT NULL REFERENCES calls(call_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        node TEXT NOT NULL,
        variant TEXT NOT NULL,
        turns_before INTEGER NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (call_id, seq)
    );
    CREATE TABLE variant_stats(
        campaign TEXT NOT NULL,
        customer_group TEXT NOT NULL,
        node TEXT NOT NULL,
        variant TEXT NOT NULL,
        uses INTEGER NOT NULL DEFAULT 0,
        sales INTEGER NOT NULL DEFAULT 0,
        answered INTEGER NOT NULL DEFAULT 0,
        talk_s REAL NOT NULL DEFAULT 0,
        interactions INTEGER NOT NULL DEFAULT 0,
        retired_at REAL,
        retired_why TEXT,
        PRIMARY KEY (campaign, customer_group, node, variant)
    );
    CREATE TABLE group_scripts(
        campaign TEXT NOT NULL,
        customer_group TEXT NOT NULL,
        prompt TEXT NOT NULL,
        text TEXT NOT NULL,
        topics TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (campaign, customer_group)
    );
    """,
    # 4: customer lists (issue 18), one row per normalised number
    """
    CREATE TABLE customers(
        number TEXT PRIMARY KEY,
        dial TEXT NOT NULL,
        campaign TEXT NOT NULL,
        list TEXT NOT NULL,
        customer_id TEXT,
        name TEXT,
        customer_group TEXT,
        language TEXT,
        time_zone TEXT,
        features TEXT NOT NULL DEFAULT '{}',
        imported_at REAL NOT NULL
    );
    CREATE INDEX customers_by_list ON customers(campaign, list);
    """,
    # 5: the interests predicted for a campaign's customer, kept with the call (issue 18)
    """
    ALTER TABLE calls ADD COLUMN interests TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
DEFAULT_VARIANT = "default"  # a prompt event that names no variant


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
            started = parse_ts(m.get("ts")) or self._clock()
            hour, slot = self._slot_of(started)
            remote = m.get("remote")
            try:
                number = normalise(remote) if remote else None
            except ValueError:  # 'anonymous', a name: kept as it came
                number = remote
            self._db.execute(
                "INSERT OR IGNORE INTO calls(call_id, started, direction, number, ref, "
                "customer_id, customer_group, campaign, language, hour, time_slot, interests) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    call_id,
                    started,
                    m.get("direction"),
                    number,
                    m.get("ref"),
                    m.get("customer_id"),
                    m.get("customer_group") or DEFAULT_GROUP,
                    m.get("campaign"),
                    m.get("language"),
                    hour,
                    slot,
                    json.dumps(m["interests"], ensure_ascii=False) if m.get("interests") else None,
                ),
            )
        elif kind == "flow":
            self._append_node(call_id, m.get("node"))
            if isinstance(m.get("variant"), str) and isinstance(m.get("node"), str):
                self._db.execute(
                    "INSERT OR IGNORE INTO node_variants(call_id, seq, node, variant, "
                    "turns_before, at) SELECT ?, ?, ?, ?, (SELECT count(*) FROM turns WHERE "
                    "call_id = ?), ? WHERE EXISTS (SELECT 1 FROM calls WHERE call_id = ?)",
                    (
                        call_id,
                        m.get("seq"),
                        m["node"],
                        m["variant"],
                        call_id,
                        parse_ts(m.get("ts")) or self._clock(),
                        call_id,
                    ),
                )
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
            ended = parse_ts(m.get("ts")) or self._clock()
            with self._db:  # the outcome and what its variants earned: both or neither
                self._db.execute("BEGIN")
                row = self._db.execute(
                    "SELECT outcome FROM calls WHERE call_id = ?", (call_id,)
                ).fetchone()
                self._db.execute(
                    "UPDATE calls SET ended = ?, outcome = ?, agreed = ?, end_reason = ?, "
                    "factor_topic = ?, turns = ?, final_emotion = ?, final_intent = ?, "
                    "outcome_json = ? WHERE call_id = ?",
                    (
                        ended,
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
                if row is not None and row[0] is None:  # counted once, at the first outcome
                    self._count_variants_apart(call_id, ended, m)

    def _count_variants_apart(self, call_id: str, ended: float, m: dict[str, Any]) -> None:
        """Count the variants in a savepoint: statistics that cannot be written cost
        themselves, never the outcome recorded with them."""
        self._db.execute("SAVEPOINT variants")
        try:
            self._count_variants(call_id, ended, bool(m.get("agreed")), m.get("turns"))
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK TO variants")
            self.failed_writes += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("call history: variants of %s not counted: %s", call_id, exc)
        self._db.execute("RELEASE variants")

    def _count_variants(self, call_id: str, ended: float, sale: bool, turns: Any) -> None:
        """Add one finished call to the statistics of each variant it heard (once per
        node and variant, from its first hearing)."""
        turns = turns if isinstance(turns, int) else 0
        heard = self._db.execute(
            "SELECT c.campaign, c.customer_group, v.node, v.variant, min(v.turns_before), "
            "min(v.at) FROM node_variants v JOIN calls c USING (call_id) WHERE call_id = ? "
            "GROUP BY v.node, v.variant",
            (call_id,),
        ).fetchall()
        for campaign, group, node, variant, before, at in heard:
            after = max(0, turns - before)
            self._db.execute(
                "INSERT INTO variant_stats(campaign, customer_group, node, variant, uses, "
                "sales, answered, talk_s, interactions) VALUES (?,?,?,?,1,?,?,?,?) "
                "ON CONFLICT DO UPDATE SET uses = uses + 1, sales = sales + excluded.sales, "
                "answered = answered + excluded.answered, talk_s = talk_s + excluded.talk_s, "
                "interactions = interactions + excluded.interactions",
                (
                    campaign or "-",
                    group or DEFAULT_GROUP,
                    node,
                    variant,
                    int(sale),
                    int(after > 0),
                    max(0.0, ended - at),
                    after,
                ),
            )

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
        """Erase every call with this number (any spelling), and the number from the
        customer lists; returns the call ids."""
        key = normalise(number)
        with self._db:
            self._db.execute("BEGIN")
            rows = self._db.execute("SELECT call_id FROM calls WHERE number = ?", (key,))
            ids = [r[0] for r in rows]
            self._db.execute("DELETE FROM calls WHERE number = ?", (key,))
            self._db.execute("DELETE FROM customers WHERE number = ?", (key,))
        return ids

    # -------------------------------------------------------- customer lists

    def store_customers(
        self, customers: list[Customer], campaign: str, list_name: str
    ) -> tuple[int, int]:
        """Insert or replace customers (one transaction); (new, updated)."""
        with self._db:
            self._db.execute("BEGIN")
            keys = [c.key for c in customers]
            known = set()
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                known |= {
                    r[0]
                    for r in self._db.execute(
                        f"SELECT number FROM customers WHERE number IN ({marks})", chunk
                    )
                }
            now = self._clock()
            self._db.executemany(
                "INSERT OR REPLACE INTO customers(number, dial, campaign, list, customer_id, "
                "name, customer_group, language, time_zone, features, imported_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        c.key,
                        c.number,
                        campaign,
                        list_name,
                        c.identity.get("customer_id"),
                        c.identity.get("name"),
                        c.identity.get("group"),
                        c.identity.get("language"),
                        c.identity.get("time_zone"),
                        json.dumps(c.features, ensure_ascii=False),
                        now,
                    )
                    for c in customers
                ],
            )
        return len(customers) - len(known), len(known)

    def customer_features(self, number: str) -> dict[str, Any] | None:
        """The list features of the customer with this (normalised) number."""
        row = self._db.execute(
            "SELECT features FROM customers WHERE number = ?", (number,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def customers_of(self, campaign: str, list_name: str) -> list[dict[str, Any]]:
        """A list's customers as a campaign run takes them, in import order."""
        rows = self._db.execute(
            "SELECT number, dial, customer_id, customer_group, language, time_zone, features "
            "FROM customers WHERE campaign = ? AND list = ? ORDER BY rowid",
            (campaign, list_name),
        )
        keys = ("number", "dial", "customer_id", "customer_group", "language", "time_zone")
        return [{**dict(zip(keys, r[:6], strict=True)), **json.loads(r[6])} for r in rows]

    def customer_lists(self, campaign: str | None = None) -> dict[str, dict[str, int]]:
        """Customers per campaign and list."""
        where, args = ("WHERE campaign = ?", (campaign,)) if campaign else ("", ())
        lists: dict[str, dict[str, int]] = {}
        for name, list_name, count in self._db.execute(
            f"SELECT campaign, list, count(*) FROM customers {where} GROUP BY 1, 2", args
        ):
            lists.setdefault(name, {})[list_name] = count
        return lists

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
            c["variants"] = [
                {
                    "node": node,
                    "variant": variant,
                    "group": group,
                    "uses": uses,
                    "sales": sales,
                    "conversion": round(sales / uses, 4) if uses else 0.0,
                    "answer_rate": round(answered / uses, 4) if uses else 0.0,
                    "mean_talk_s": round(talk_s / uses, 1) if uses else 0.0,
                    "retired": why,
                }
                for node, variant, group, uses, sales, answered, talk_s, why in self._db.execute(
                    "SELECT node, variant, customer_group, uses, sales, answered, talk_s, "
                    "retired_why FROM variant_stats WHERE campaign = ? ORDER BY 1, 3, 2",
                    (name,),
                )
            ]
        return {
            "campaigns": campaigns,
            "kept_days": self.keep_days,
            "customer_lists": self.customer_lists(campaign),
        }

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

    # ------------------------------------------------------- variants, groups

    def variant_book(self, campaign: str, group: str) -> dict[str, dict[str, VariantStats]]:
        """What each variant of the campaign did for the group: node -> variant -> stats."""
        book: dict[str, dict[str, VariantStats]] = {}
        rows = self._db.execute(
            "SELECT node, variant, uses, sales, answered, talk_s, interactions, retired_why "
            "FROM variant_stats WHERE campaign = ? AND customer_group = ?",
            (campaign, group),
        )
        for node, variant, *figures in rows:
            book.setdefault(node, {})[variant] = VariantStats(*figures)
        return book

    def retire_variant(self, campaign: str, group: str, node: str, variant: str, why: str) -> None:
        self._db.execute(
            "UPDATE variant_stats SET retired_at = ?, retired_why = ? WHERE campaign = ? AND "
            "customer_group = ? AND node = ? AND variant = ?",
            (self._clock(), why, campaign, group, node, variant),
        )

    def restore_variant(self, campaign: str, group: str, node: str, variant: str) -> bool:
        """Back in the draw (its figures kept); False when it was not retired."""
        cur = self._db.execute(
            "UPDATE variant_stats SET retired_at = NULL, retired_why = NULL WHERE campaign = ? "
            "AND customer_group = ? AND node = ? AND variant = ? AND retired_at IS NOT NULL",
            (campaign, group, node, variant),
        )
        return cur.rowcount > 0

    def group_interests(self, campaign: str, group: str, limit: int) -> tuple[int, list[str]]:
        """Over the group's latest `limit` calls of the campaign: how many named a topic
        (asked about it, or it was their influencing factor), and the topics by how many
        calls named them, most first (ties by name)."""
        named: dict[str, set[str]] = {}
        rows = self._db.execute(
            "SELECT t.call_id, t.topics, t.reply FROM turns t WHERE t.call_id IN (SELECT "
            "call_id FROM calls WHERE campaign = ? AND customer_group = ? AND ended IS NOT "
            "NULL ORDER BY ended DESC LIMIT ?)",
            (campaign, group, limit),
        )
        for call_id, topics, reply in rows:
            found = set(json.loads(topics or "[]"))
            asked = json.loads(reply or "{}").get("topic")
            if asked:
                found.add(asked)
            if found:
                named.setdefault(call_id, set()).update(found)
        counts: dict[str, int] = {}
        for topics in named.values():
            for topic in topics:
                counts[topic] = counts.get(topic, 0) + 1
        return len(named), sorted(counts, key=lambda t: (-counts[t], t))

    def group_scripts(self, campaign: str) -> dict[str, dict[str, Any]]:
        """The campaign's composed scripts by customer group."""
        rows = self._db.execute(
            "SELECT customer_group, prompt, text, topics, at FROM group_scripts WHERE campaign = ?",
            (campaign,),
        )
        return {
            group: {"prompt": prompt, "text": text, "topics": json.loads(topics), "at": at}
            for group, prompt, text, topics, at in rows
        }

    def store_group_script(
        self, campaign: str, group: str, prompt: str, text: str, topics: list[str]
    ) -> bool:
        """Keep the group's script; False when the group already has one (kept as it is:
        from then on the bandit judges it)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO group_scripts(campaign, customer_group, prompt, text, "
            "topics, at) VALUES (?,?,?,?,?,?)",
            (campaign, group, prompt, text, json.dumps(topics, ensure_ascii=False), self._clock()),
        )
        return cur.rowcount > 0

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
