"""Durable outbox: every message to head office is on disk before it is published.

A message is committed to SQLite (WAL journal) when it is queued and deleted only
after the broker acknowledged it (PUBACK), so a crash, a power cut or a broker
outage never loses an acknowledged-to-the-caller message; messages are read back
in the order they were queued. `synchronous=FULL` is the default because a branch
mini-PC loses power without warning: with NORMAL, WAL commits survive a process
crash but the last ones may be lost on power loss. NORMAL is offered for slow
SD/eMMC storage (see docs/mqtt.md).

Faults handled here: a full outbox drops the oldest per-turn events (then
prompts, then 'other') and counts them, outcomes and requests never; a corrupt
file is moved aside, salvaged as far as possible and replaced; a full disk keeps
new messages in memory (in order) and retries writing them.

All SQLite work runs in one worker thread so the event loop never waits on fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edgecall.config.mqtt import OutboxConfig

log = logging.getLogger("edgecall.mqtt.outbox")

Kind = Literal["event", "outcome", "request", "prompt", "other"]
KINDS: tuple[Kind, ...] = ("event", "outcome", "request", "prompt", "other")
# Dropped first to last when full; outcomes and requests (an SMS head office must
# send for us) are never dropped.
DROP_ORDER: tuple[Kind, ...] = ("event", "prompt", "other")
SPILL_RETRY_S = 1.0
GROUP_MAX = 500  # most messages committed in one transaction

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26
_SQLITE_IOERR = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages(
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    enqueued_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_kind ON messages(kind, seq);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COLUMNS = "seq, message_id, kind, topic, payload, qos, retain, enqueued_at"


@dataclass(frozen=True)
class Message:
    """One queued message; `seq` orders the outbox, `message_id` is for subscribers."""

    seq: int
    message_id: str
    kind: Kind
    topic: str
    payload: bytes
    qos: int
    retain: bool
    enqueued_at: float

    def row(self) -> tuple[Any, ...]:
        return (
            self.seq,
            self.message_id,
            self.kind,
            self.topic,
            self.payload,
            self.qos,
            int(self.retain),
            self.enqueued_at,
        )


def _primary_code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return _primary_code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _is_write_failure(exc: sqlite3.Error) -> bool:
    return _primary_code(exc) in (_SQLITE_FULL, _SQLITE_IOERR)


class OutboxCorrupt(Exception):
    """Raised internally when the file fails its integrity check."""


class Outbox:
    """SQLite-backed FIFO of messages awaiting a PUBACK. Use `await Outbox.open(...)`."""

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 100_000,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._conn: sqlite3.Connection | None = None
        self._next_seq = 1
        self._counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._dropped: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._spill: list[Message] = []
        self._waiting: list[tuple[tuple[Any, ...], asyncio.Future[Message]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._spill_tried = 0.0
        self.disk_full = False
        self.last_write_error: str | None = None
        self.over_capacity = False
        self.corrupt_files: list[str] = []
        self.salvaged = 0
        self.generation = 0  # bumped when the file was replaced; readers restart from 0
        self.enqueued_total = 0
        self.acked_total = 0

    # ---------------------------------------------------------------- public API

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_messages: int = 100_000,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> Outbox:
        box = cls(path, max_messages=max_messages, synchronous=synchronous)
        await box._run(box._open_sync)
        return box

    @classmethod
    async def for_config(cls, config: OutboxConfig, state_dir: Path) -> Outbox:
        """The outbox the daemon uses: `mqtt.outbox` settings, file in `storage.state_dir`."""
        return await cls.open(
            Path(state_dir) / config.file,
            max_messages=config.max_messages,
            synchronous=config.synchronous,
        )

    async def put(
        self,
        topic: str,
        payload: bytes,
        *,
        kind: Kind,
        message_id: str,
        qos: int = 1,
        retain: bool = False,
    ) -> Message:
        """Queue one message; returns once it is committed (or held in memory on a full disk)."""
        if kind not in KINDS:
            raise ValueError(f"unknown message kind {kind!r}; use one of {KINDS}")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting.append(((topic, bytes(payload), kind, message_id, qos, retain), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        return await future

    async def _write_waiting(self) -> None:
        """Group commit: every put that arrived during one commit shares the next one."""
        while self._waiting:
            batch, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            try:
                done = await self._run(self._put_batch_sync, [item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), msg in zip(batch, done, strict=True):
                if not future.done():
                    future.set_result(msg)

    async def peek(self, after_seq: int, limit: int) -> list[Message]:
        """Up to `limit` messages with seq > after_seq, oldest first."""
        return await self._run(self._peek_sync, after_seq, limit)

    async def ack(self, seqs: Iterable[int]) -> None:
        """Forget acknowledged messages (a crash before this only causes a duplicate)."""
        seqs = list(seqs)
        if seqs:
            await self._run(self._ack_sync, seqs)

    async def erase(self, matches: Callable[[dict[str, Any]], bool]) -> int:
        """Delete the queued messages whose JSON body `matches`, unsent (a person's data,
        erased on request: `edgecall forget`); returns how many."""
        return await self._run(self._erase_sync, matches)

    async def retry_spill(self) -> None:
        """Try again to write messages held in memory after a disk-full error; with none
        held, count the messages on disk again (another process, `edgecall forget`, may
        have erased some). Called when the link is idle."""
        if self._spill:
            await self._run(self._flush_spill_sync, True)
        elif self._conn is not None:
            await self._run(self._recount_sync)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        with contextlib.suppress(RuntimeError):
            await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        if self._spill:
            log.error(
                "outbox closed with %d messages only in memory (disk full): they are lost",
                len(self._spill),
            )

    @property
    def depth(self) -> int:
        return sum(self._counts.values())

    def stats(self) -> dict[str, Any]:
        """Snapshot for <prefix>/stats (see schemas/stats.json, 'outbox')."""
        return {
            "depth": self.depth,
            "depth_by_kind": dict(self._counts),
            "max_messages": self.max_messages,
            "over_capacity": self.over_capacity,
            "dropped": {k: self._dropped[k] for k in DROP_ORDER},
            "in_memory": len(self._spill),
            "disk_full": self.disk_full,
            "last_write_error": self.last_write_error,
            "corrupt_files": list(self.corrupt_files),
            "salvaged": self.salvaged,
            "enqueued_total": self.enqueued_total,
            "acked_total": self.acked_total,
        }

    # ------------------------------------------------------------- worker side

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("outbox %s: journal mode is %s, not WAL", self.path, mode)
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise OutboxCorrupt("; ".join(str(r[0]) for r in check[:3]))
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._connect()
        except OutboxCorrupt as exc:
            self._recover_sync(str(exc))
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._recover_sync(str(exc))
        self._load_state_sync()

    def _recount_sync(self) -> None:
        if self._conn is None or self._spill:
            return
        with contextlib.suppress(sqlite3.Error):
            counts = dict.fromkeys(KINDS, 0)
            for kind, n in self._conn.execute("SELECT kind, count(*) FROM messages GROUP BY kind"):
                counts[kind if kind in KINDS else "other"] += n
            self._counts = counts

    def _load_state_sync(self) -> None:
        assert self._conn is not None
        self._counts = dict.fromkeys(KINDS, 0)
        for kind, n in self._conn.execute("SELECT kind, count(*) FROM messages GROUP BY kind"):
            self._counts[kind if kind in KINDS else "other"] += n
        for name, value in self._conn.execute("SELECT name, value FROM counters"):
            if name.startswith("dropped_") and name[8:] in KINDS:
                self._dropped[name[8:]] = value
        top = self._conn.execute("SELECT max(seq) FROM messages").fetchone()[0] or 0
        self._next_seq = max(self._next_seq, top + 1)
        self.over_capacity = self.depth > self.max_messages
        if self.depth:
            log.info("outbox %s: %d messages waiting from before", self.path, self.depth)

    def _recover_sync(self, reason: str) -> None:
        """Move a corrupt file aside, start a new one, copy over what can still be read."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        log.error(
            "outbox %s is corrupt (%s): moved it to %s and started a new outbox",
            self.path,
            reason,
            aside,
        )
        self.corrupt_files.append(str(aside))
        self.generation += 1
        self._counts = dict.fromkeys(KINDS, 0)
        rows = _salvage(aside)
        self._conn = self._connect()
        if rows:
            with self._tx() as conn:
                conn.executemany(
                    f"INSERT OR IGNORE INTO messages({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows
                )
            self.salvaged += len(rows)
            for row in rows:
                self._counts[row[2] if row[2] in KINDS else "other"] += 1
        log.error("outbox: salvaged %d messages from %s", len(rows), aside)
        # Messages written after the corruption are not in the file; keep their order.
        if self._spill:
            self._flush_spill_sync(True)

    @contextlib.contextmanager
    def _tx(self) -> Any:
        assert self._conn is not None
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Run `fn`, replacing the file once if SQLite reports corruption."""
        try:
            return fn(*args)
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._recover_sync(str(exc))
            return fn(*args)

    def _put_batch_sync(self, items: list[tuple[Any, ...]]) -> list[Message]:
        msgs = []
        for topic, payload, kind, message_id, qos, retain in items:
            msgs.append(
                Message(
                    seq=self._next_seq,
                    message_id=message_id,
                    kind=kind,
                    topic=topic,
                    payload=payload,
                    qos=qos,
                    retain=retain,
                    enqueued_at=time.time(),
                )
            )
            self._next_seq += 1
        self.enqueued_total += len(msgs)
        if self._spill:
            self._flush_spill_sync(False)
        if not self._spill:
            try:
                self._guard(self._insert_sync, msgs)
                return msgs
            except sqlite3.DatabaseError as exc:
                if not _is_write_failure(exc):
                    raise
                self._enter_disk_full(exc)
        for msg in msgs:  # disk full: keep them in memory, in order
            victim = self._victim(self._counts)
            if victim is not None:
                self._drop_from_spill(victim)
            self._spill.append(msg)
            self._counts[msg.kind] += 1
        return msgs

    def _victim(self, counts: dict[str, int]) -> Kind | None:
        """Kind to drop one message of before adding one more, or None (room, or outcomes only)."""
        if sum(counts.values()) < self.max_messages:
            return None
        for kind in DROP_ORDER:
            if counts[kind] > 0:
                return kind
        if not self.over_capacity:
            log.warning(
                "outbox full (%d) with outcomes only: keeping them all and growing",
                sum(counts.values()),
            )
        self.over_capacity = True
        return None

    def _insert_sync(self, msgs: list[Message]) -> None:
        counts = dict(self._counts)
        drops: list[Kind] = []
        with self._tx() as conn:
            for msg in msgs:
                victim = self._victim(counts)
                if victim is not None:
                    gone = conn.execute(
                        "DELETE FROM messages WHERE seq = "
                        "(SELECT min(seq) FROM messages WHERE kind = ?) RETURNING seq",
                        (victim,),
                    ).fetchone()
                    if gone is not None:
                        counts[victim] -= 1
                        drops.append(victim)
                        conn.execute(
                            "INSERT INTO counters(name, value) VALUES (?, 1) "
                            "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                            (f"dropped_{victim}",),
                        )
                conn.execute(
                    f"INSERT INTO messages({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", msg.row()
                )
                counts[msg.kind] += 1
        self._counts = counts
        for kind in drops:
            self._note_drop(kind)
        if self.depth <= self.max_messages:
            self.over_capacity = False

    def _note_drop(self, kind: Kind) -> None:
        self._dropped[kind] += 1
        if self._dropped[kind] == 1 or self._dropped[kind] % 1000 == 0:
            log.warning(
                "outbox full (%d): dropped oldest %s messages, %d so far",
                self.max_messages,
                kind,
                self._dropped[kind],
            )

    def _drop_from_spill(self, kind: Kind) -> None:
        for i, held in enumerate(self._spill):
            if held.kind == kind:
                del self._spill[i]
                self._counts[kind] -= 1
                self._note_drop(kind)
                return

    def _enter_disk_full(self, exc: sqlite3.Error) -> None:
        self.last_write_error = str(exc)
        self._spill_tried = time.monotonic()
        if not self.disk_full:
            log.error(
                "outbox %s cannot be written (%s): keeping new messages in memory "
                "and retrying every %.0f s",
                self.path,
                exc,
                SPILL_RETRY_S,
            )
        self.disk_full = True

    def _flush_spill_sync(self, force: bool) -> None:
        now = time.monotonic()
        if not self._spill or (not force and now - self._spill_tried < SPILL_RETRY_S):
            return
        self._spill_tried = now
        try:
            self._guard(self._write_spill_sync)
        except sqlite3.DatabaseError as exc:
            if not _is_write_failure(exc):
                raise
            self.last_write_error = str(exc)
            return
        log.warning("outbox %s writable again: wrote the messages held in memory", self.path)
        self.disk_full = False

    def _write_spill_sync(self) -> None:
        with self._tx() as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO messages({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                [m.row() for m in self._spill],
            )
        self._spill.clear()

    def _peek_sync(self, after_seq: int, limit: int) -> list[Message]:
        if self._spill:
            self._flush_spill_sync(False)
        rows = self._guard(self._select_sync, after_seq, limit)
        out = [_message(r) for r in rows]
        if len(out) < limit and self._spill:
            last = out[-1].seq if out else after_seq
            out.extend(m for m in self._spill if m.seq > last)
            del out[limit:]
        return out

    def _select_sync(self, after_seq: int, limit: int) -> list[tuple[Any, ...]]:
        assert self._conn is not None
        return self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()

    def _ack_sync(self, seqs: list[int]) -> None:
        wanted = set(seqs)
        if self._spill:
            kept = []
            for m in self._spill:
                if m.seq in wanted:
                    self._counts[m.kind] -= 1
                    self.acked_total += 1
                else:
                    kept.append(m)
            self._spill = kept
        try:
            deleted = self._guard(self._delete_sync, seqs)
        except sqlite3.DatabaseError as exc:
            if not _is_write_failure(exc):
                raise
            # Not fatal: the rows stay and are sent again (same message_id) later.
            self.last_write_error = str(exc)
            log.log(
                logging.DEBUG if self.disk_full else logging.WARNING,
                "outbox: could not delete acknowledged messages yet: %s",
                exc,
            )
            return
        for (kind,) in deleted:
            self._counts[kind if kind in KINDS else "other"] -= 1
            self.acked_total += 1
        if self.depth <= self.max_messages:
            self.over_capacity = False

    def _erase_sync(self, matches: Callable[[dict[str, Any]], bool]) -> int:
        def hit(payload: bytes) -> bool:
            try:
                body = json.loads(payload)
            except (ValueError, TypeError):
                return False
            return isinstance(body, dict) and bool(matches(body))

        rows = self._guard(self._payloads_sync)  # oldest first, then the newer spill
        deleted = self._guard(self._delete_sync, [seq for seq, payload in rows if hit(payload)])
        for (kind,) in deleted:
            self._counts[kind if kind in KINDS else "other"] -= 1
        erased = [m for m in self._spill if hit(m.payload)]
        self._spill = [m for m in self._spill if m not in erased]
        for m in erased:
            self._counts[m.kind] -= 1
        return len(erased) + len(deleted)

    def _payloads_sync(self) -> list[tuple[int, bytes]]:
        assert self._conn is not None
        return self._conn.execute("SELECT seq, payload FROM messages ORDER BY seq").fetchall()

    def _delete_sync(self, seqs: list[int]) -> list[tuple[str]]:
        out: list[tuple[str]] = []
        with self._tx() as conn:
            for i in range(0, len(seqs), 500):
                chunk = seqs[i : i + 500]
                marks = ",".join("?" * len(chunk))
                out += conn.execute(
                    f"DELETE FROM messages WHERE seq IN ({marks}) RETURNING kind", chunk
                ).fetchall()
        return out

    def _close_sync(self) -> None:
        if self._conn is not None:
            if self._spill:
                with contextlib.suppress(sqlite3.Error):
                    self._flush_spill_sync(True)
            self._conn.close()
            self._conn = None


def _message(row: tuple[Any, ...]) -> Message:
    seq, message_id, kind, topic, payload, qos, retain, enqueued_at = row
    return Message(
        seq=seq,
        message_id=message_id,
        kind=kind if kind in KINDS else "other",
        topic=topic,
        payload=bytes(payload),
        qos=qos,
        retain=bool(retain),
        enqueued_at=enqueued_at,
    )


def _salvage(path: Path) -> list[tuple[Any, ...]]:
    """Best effort: read rows forwards until damage, then backwards until damage."""
    found: dict[int, tuple[Any, ...]] = {}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        for order in ("ASC", "DESC"):
            try:
                for row in conn.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY seq {order}"):
                    if isinstance(row[0], int) and isinstance(row[4], bytes | str):
                        payload = row[4].encode() if isinstance(row[4], str) else row[4]
                        found.setdefault(row[0], (*row[:4], payload, *row[5:]))
            except sqlite3.Error:
                continue
    finally:
        conn.close()
    return [found[k] for k in sorted(found)]
