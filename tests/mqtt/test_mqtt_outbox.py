"""The durable outbox on real SQLite files: order, bounds, corruption, full disk."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from edgecall.mqtt.outbox import Outbox


async def fill(box: Outbox, kind: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        await box.put(f"t/{kind}", f"{kind}-{n}".encode(), kind=kind, message_id=f"{kind}-{n}")


async def ids(box: Outbox) -> list[str]:
    return [m.message_id for m in await box.peek(0, 100_000)]


async def test_order_fields_and_durability_across_reopen(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    box = await Outbox.open(path)
    await box.put("a/b", b"\x00payload", kind="outcome", message_id="m1", qos=1, retain=True)
    await fill(box, "event", 0, 5)
    first = (await box.peek(0, 1))[0]
    assert (first.topic, first.payload, first.kind, first.qos, first.retain) == (
        "a/b",
        b"\x00payload",
        "outcome",
        1,
        True,
    )
    await box.ack([first.seq])
    await box.close()

    box = await Outbox.open(path)
    assert await ids(box) == [f"event-{n}" for n in range(5)]
    rest = await box.peek(0, 2)
    assert [m.message_id for m in await box.peek(rest[-1].seq, 10)] == [
        "event-2",
        "event-3",
        "event-4",
    ]
    await box.put("t", b"x", kind="event", message_id="new")
    assert (await ids(box))[-1] == "new"  # new messages go after the old ones
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    await box.close()


async def test_concurrent_puts_share_commits_and_keep_call_order(tmp_path: Path):
    box = await Outbox.open(tmp_path / "o.sqlite", max_messages=150)
    msgs = await asyncio.gather(
        *(box.put("t", b"x", kind="event", message_id=f"e{n}") for n in range(200))
    )
    assert [m.seq for m in msgs] == sorted(m.seq for m in msgs)
    assert await ids(box) == [f"e{n}" for n in range(50, 200)]  # 50 oldest dropped
    assert box.stats()["dropped"]["event"] == 50
    await box.close()
    box = await Outbox.open(tmp_path / "o.sqlite", max_messages=150)
    assert box.depth == 150
    await box.close()


async def test_full_outbox_drops_oldest_events_then_prompts_never_outcomes(tmp_path: Path):
    box = await Outbox.open(tmp_path / "o.sqlite", max_messages=10)
    await fill(box, "event", 0, 4)
    await fill(box, "outcome", 0, 3)
    await fill(box, "prompt", 0, 3)
    await fill(box, "event", 4, 2)  # full: drops event-0, event-1
    assert await ids(box) == [
        *[f"event-{n}" for n in (2, 3)],
        *[f"outcome-{n}" for n in range(3)],
        *[f"prompt-{n}" for n in range(3)],
        "event-4",
        "event-5",
    ]
    await fill(box, "outcome", 3, 5)  # drops the 4 events, then the oldest prompt
    assert box.stats()["dropped"] == {"event": 6, "prompt": 1, "other": 0}
    assert [i for i in await ids(box) if i.startswith("outcome")] == [
        f"outcome-{n}" for n in range(8)
    ]
    await fill(box, "outcome", 8, 5)  # only outcomes (and prompts) left: prompts go, then grow
    stats = box.stats()
    assert stats["depth_by_kind"]["outcome"] == 13 and stats["depth"] == 13
    assert stats["over_capacity"] is True
    await box.close()

    box = await Outbox.open(tmp_path / "o.sqlite", max_messages=10)
    assert box.stats()["dropped"] == {"event": 6, "prompt": 3, "other": 0}  # counts persist
    assert box.over_capacity
    await box.ack([m.seq for m in await box.peek(0, 5)])
    assert not box.over_capacity and box.depth == 8
    await box.close()


async def test_sms_requests_are_never_dropped(tmp_path: Path):
    box = await Outbox.open(tmp_path / "o.sqlite", max_messages=5)
    await fill(box, "request", 0, 4)
    await fill(box, "event", 0, 6)  # events make room for each other, never for requests
    assert [i for i in await ids(box) if i.startswith("request")] == [
        f"request-{n}" for n in range(4)
    ]
    await fill(box, "request", 4, 3)
    assert box.stats()["depth_by_kind"]["request"] == 7
    assert box.stats()["dropped"]["event"] == 6
    await box.close()


async def test_corrupt_file_is_moved_aside_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not an sqlite file at all" * 100)
    caplog.set_level(logging.ERROR, "edgecall.mqtt.outbox")
    box = await Outbox.open(path)
    stats = box.stats()
    assert len(stats["corrupt_files"]) == 1
    aside = Path(stats["corrupt_files"][0])
    assert aside.exists() and aside.name.startswith("outbox.sqlite.corrupt-")
    assert any("corrupt" in r.getMessage() and str(aside) in r.getMessage() for r in caplog.records)
    await box.put("t", b"x", kind="outcome", message_id="after")
    assert await ids(box) == ["after"]
    await box.close()


async def test_damaged_pages_salvage_what_is_readable(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    box = await Outbox.open(path)
    for n in range(400):
        await box.put("t", bytes(300) + str(n).encode(), kind="outcome", message_id=f"m{n}")
    await box.close()  # checkpoints the WAL into the main file
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page
    data[middle : middle + page] = b"\xa5" * page  # wreck one page in the middle
    path.write_bytes(bytes(data))

    box = await Outbox.open(path)
    stats = box.stats()
    assert len(stats["corrupt_files"]) == 1
    kept = await ids(box)
    assert 0 < stats["salvaged"] == len(kept) < 400
    numbers = [int(i[1:]) for i in kept]
    assert numbers == sorted(numbers)  # salvaged rows keep their order
    await box.close()


async def test_full_disk_keeps_messages_in_memory_and_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    box = await Outbox.open(tmp_path / "outbox.sqlite")
    caplog.set_level(logging.WARNING, "edgecall.mqtt.outbox")
    # A page budget makes SQLite fail with SQLITE_FULL exactly as on a full disk.
    await box._run(lambda: box._conn.execute("PRAGMA max_page_count = 12"))
    for n in range(200):
        await box.put("t", bytes(200) + str(n).encode(), kind="outcome", message_id=f"m{n}")
    stats = box.stats()
    assert stats["disk_full"] is True and stats["in_memory"] > 0
    assert "full" in stats["last_write_error"]
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
    assert await ids(box) == [f"m{n}" for n in range(200)]  # in order, memory after disk

    first = await box.peek(0, 3)
    await box.ack([m.seq for m in first])
    assert box.depth == 197
    await box._run(lambda: box._conn.execute("PRAGMA max_page_count = 1000000"))
    await box.retry_spill()
    assert box.stats()["disk_full"] is False and box.stats()["in_memory"] == 0
    await box.close()
    box = await Outbox.open(tmp_path / "outbox.sqlite")
    assert await ids(box) == [f"m{n}" for n in range(3, 200)]
    await box.close()


async def test_rejects_unknown_kind(tmp_path: Path):
    box = await Outbox.open(tmp_path / "o.sqlite")
    with pytest.raises(ValueError, match="kind"):
        await box.put("t", b"x", kind="gossip", message_id="x")  # type: ignore[arg-type]
    await box.close()
