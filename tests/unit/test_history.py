"""The call history: recorded from the very messages a call publishes (replayed calls
through the real rule engine), kept 0600, pruned, erased per person, readable after a
crash, and never in a call's way when the database is broken."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import datetime
from pathlib import Path

import pytest

from edgecall.dialer import DialQueue
from edgecall.history import SCHEMA_VERSION, History, HistoryError, RecordingPublisher
from edgecall.messages import Identity, envelope
from edgecall.mqtt.outbox import Outbox
from edgecall.privacy import forget
from edgecall.replay import load_replay, run_replay

CALLS = Path(__file__).resolve().parents[1] / "data" / "calls"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def replayed(cfg, name: str) -> list[dict]:
    """Every message the call would publish, in order (events and its outcome)."""
    messages, _ = run_replay(load_replay(CALLS / f"{name}.yaml"), cfg, call_id=name)
    return [m.body for m in messages if m.kind in ("event", "outcome")]


def history(tmp_path: Path, **kw) -> History:
    return History(tmp_path / "history.sqlite", keep_days=kw.pop("keep_days", 90), **kw)


def rows(h: History, sql: str, *args) -> list[tuple]:
    return h._db.execute(sql, args).fetchall()


def test_a_replayed_sale_and_a_failed_call_are_recorded_as_head_office_gets_them(
    tmp_path, shipped_config
):
    h = history(tmp_path, slots=shipped_config.assist.time_slots)
    for name in ("completed-en", "failed-en"):
        for message in replayed(shipped_config, name):
            h.record(message)
    (sale,) = rows(
        h,
        "SELECT direction, number, campaign, outcome, agreed, turns, nodes, quality_samples, "
        "quality_min_dbm FROM calls WHERE call_id = 'completed-en'",
    )
    direction, number, campaign, outcome, agreed, turns, nodes, samples, min_dbm = sale
    assert (direction, number, campaign, outcome, agreed) == (
        "inbound",
        "+15550100005",
        "retail-en",
        "completed",
        1,
    )
    assert turns == 3 and samples >= 10 and min_dbm == -82
    assert json.loads(nodes) == ["opening", "intro", "offer", "sale"]
    ((started, hour, slot),) = rows(
        h, "SELECT started, hour, time_slot FROM calls WHERE call_id = 'completed-en'"
    )
    local = datetime.fromtimestamp(started)
    assert hour == local.hour
    hhmm = local.strftime("%H:%M")
    expected = [s.name for s in shipped_config.assist.time_slots if s.start <= hhmm < s.end]
    assert [slot] == (expected or [None])
    said = rows(h, "SELECT turn, utterance FROM turns WHERE call_id = 'completed-en' ORDER BY 1")
    assert [u for _, u in said] == [
        "Hello, what plan is it?",
        "Sounds good, I'm interested. How much is it?",
        "Yes, go ahead.",
    ]
    prompts = rows(h, "SELECT situation, variant FROM prompts WHERE call_id = 'completed-en'")
    assert prompts and all(v == "default" for _, v in prompts)
    (failed,) = rows(h, "SELECT outcome, factor_topic FROM calls WHERE call_id = 'failed-en'")
    assert failed == ("failed", "price")
    (price_turn,) = rows(h, "SELECT topics FROM turns WHERE call_id = 'failed-en' AND turn = 2")
    assert "price" in json.loads(price_turn[0])

    summary = h.summary()["campaigns"]["retail-en"]
    assert (summary["calls"], summary["agreed"], summary["conversion"]) == (2, 1, 0.5)
    assert summary["outcomes"] == {"completed": 1, "failed": 1}
    assert summary["top_factors"] == [{"topic": "price", "calls": 1}]
    heard = {
        (v["node"], v["variant"]): (v["uses"], v["sales"], v["answer_rate"])
        for v in summary["variants"]
    }
    assert heard == {  # each node's variant, once per call; answered: a turn came after it
        ("opening", "opening"): (2, 1, 1.0),
        ("intro", "product_intro"): (1, 1, 1.0),
        ("offer", "offer"): (1, 1, 1.0),
        ("sale", "sale_confirmed"): (1, 1, 0.0),
        ("objection", "objection"): (1, 0, 0.0),
    }
    assert {v["group"] for v in summary["variants"]} == {"general"}
    assert h.summary("retail-zh")["campaigns"] == {}


def test_the_file_is_private_and_a_reopened_history_keeps_every_finished_call(
    tmp_path, shipped_config
):
    h = history(tmp_path)
    for message in replayed(shipped_config, "completed-en"):
        h.record(message)
    # no close(): as after a SIGKILL, the WAL holds the committed rows
    assert stat.S_IMODE((tmp_path / "history.sqlite").stat().st_mode) == 0o600
    again = history(tmp_path)
    assert rows(again, "SELECT outcome FROM calls") == [("completed",)]
    assert rows(again, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_calls_past_the_retention_are_pruned(tmp_path, shipped_config):
    clock = [NOW]
    h = history(tmp_path, keep_days=30, clock=lambda: clock[0])
    old = replayed(shipped_config, "completed-en")
    for message in old:
        h.record({**message, "ts": "2026-12-01T08:00:00.000Z"})  # 45 days before NOW
    for message in replayed(shipped_config, "failed-en"):
        h.record({**message, "ts": "2027-01-10T08:00:00.000Z"})
    assert h.prune() == 1
    assert rows(h, "SELECT call_id FROM calls") == [("failed-en",)]
    assert rows(h, "SELECT count(*) FROM turns WHERE call_id = 'completed-en'") == [(0,)]


async def test_forget_erases_a_person_from_history_dials_and_outbox(tmp_path, shipped_config):
    h = history(tmp_path)
    outbox = await Outbox.open(tmp_path / "outbox.sqlite")
    dials = DialQueue(tmp_path / "dials.sqlite")
    identity = Identity("branch-01", "edge-01")
    for name in ("completed-en", "failed-en"):
        for message in replayed(shipped_config, name):
            h.record(message)
            await outbox.put(
                "t", json.dumps(message).encode(), kind="event", message_id=message["message_id"]
            )
    sms = envelope(identity, "edgecall.sms-request/1", {"number": "+1 555 010 0005", "text": "x"})
    await outbox.put("t", json.dumps(sms).encode(), kind="request", message_id=sms["message_id"])
    dials.add_many([{"number": "+15550100005"}, {"number": "+15550100006"}], NOW)
    kept = outbox.depth - len(replayed(shipped_config, "completed-en")) - 1

    erased = await forget("+1 (555) 010-0005", history=h, dials=dials, outbox=outbox)

    assert erased == {
        "calls": 1,
        "dial_items": 1,
        "queued_messages": len(replayed(shipped_config, "completed-en")) + 1,
    }
    assert rows(h, "SELECT call_id FROM calls") == [("failed-en",)]
    assert [i.number for i in dials.due(NOW, 10)] == ["+15550100006"]
    left = [json.loads(m.payload) for m in await outbox.peek(0, 1000)]
    assert len(left) == kept == outbox.depth
    assert {m["call_id"] for m in left} == {"failed-en"}
    with pytest.raises(ValueError):
        await forget("not a number", history=h, dials=dials, outbox=outbox)
    await outbox.close()


async def test_forget_finds_a_call_in_the_outbox_when_the_history_has_none(
    tmp_path, shipped_config
):
    outbox = await Outbox.open(tmp_path / "outbox.sqlite")
    for message in replayed(shipped_config, "completed-en"):
        await outbox.put(
            "t", json.dumps(message).encode(), kind="event", message_id=message["message_id"]
        )
    dials = DialQueue(tmp_path / "dials.sqlite")
    erased = await forget("+15550100005", history=None, dials=dials, outbox=outbox)
    assert erased["queued_messages"] == len(replayed(shipped_config, "completed-en"))
    assert outbox.depth == 0
    await outbox.close()


def test_a_corrupt_file_is_moved_aside_and_a_new_history_starts(tmp_path, shipped_config):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    h = History(path, keep_days=90)
    assert h.moved_aside is not None and h.moved_aside.read_bytes().startswith(b"this is not")
    for message in replayed(shipped_config, "failed-en"):
        h.record(message)
    assert rows(h, "SELECT outcome FROM calls") == [("failed",)]


def test_a_newer_schema_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError, match="newer than this edgecall"):
        History(path, keep_days=90)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


async def test_a_locked_database_costs_the_record_not_the_call(tmp_path, shipped_config):
    h = history(tmp_path)
    sent = []

    class Link:
        async def publish_event(self, message):
            sent.append(message)
            return message["message_id"]

        async def publish_outcome(self, message):
            sent.append(message)
            return message["message_id"]

    publisher = RecordingPublisher(h, Link())
    blocker = sqlite3.connect(tmp_path / "history.sqlite", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    messages = replayed(shipped_config, "failed-en")
    await publisher.publish_event(messages[0])  # call.started: the database is locked
    blocker.rollback()
    for message in messages[1:]:
        if message["schema"] == "edgecall.outcome/1":
            await publisher.publish_outcome(message)
        else:
            await publisher.publish_event(message)
    assert len(sent) == len(messages)  # head office got everything
    assert h.failed_writes == 1 and "locked" in (h.stats()["last_error"] or "")
    assert rows(h, "SELECT count(*) FROM calls") == [(0,)]  # its start was lost: no orphans


def test_stats_and_forget_on_the_command_line(tmp_path, shipped_config):
    from tests.unit.test_config import REPO, run_cli

    state = tmp_path / "state"
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("/var/lib/edgecall", str(state), 1), encoding="utf-8")
    h = History(state / "history.sqlite", keep_days=90)
    for name in ("completed-en", "failed-en"):
        for message in replayed(shipped_config, name):
            h.record(message)
    h.close()

    shown = run_cli("stats", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "campaign retail-en: 2 calls, 1 sales (50.0%)" in shown.stdout
    assert "top factors: price 1" in shown.stdout
    as_json = json.loads(run_cli("stats", "--json", "--config", str(config)).stdout)
    assert as_json["campaigns"]["retail-en"]["outcomes"] == {"completed": 1, "failed": 1}

    erased = run_cli("forget", "+1 555 010 0006", "--config", str(config))
    assert erased.returncode == 0, erased.stderr
    assert "erased 1 call(s) from the history" in erased.stdout
    after = json.loads(run_cli("stats", "--json", "--config", str(config)).stdout)
    assert after["campaigns"]["retail-en"]["outcomes"] == {"completed": 1}
    bad = run_cli("forget", "call me maybe", "--config", str(config))
    assert bad.returncode == 2 and "not a phone number" in bad.stderr


def test_a_full_disk_costs_the_records_it_refuses_and_nothing_before(tmp_path, shipped_config):
    h = history(tmp_path)
    for message in replayed(shipped_config, "completed-en"):
        h.record(message)
    pages = h._db.execute("PRAGMA page_count").fetchone()[0]
    h._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
    for message in replayed(shipped_config, "failed-en"):
        h.record({**message, "utterance": "x" * 5000} if message.get("type") == "turn" else message)
    assert h.failed_writes > 0 and "full" in h.stats()["last_error"]
    assert rows(h, "SELECT call_id, outcome FROM calls WHERE call_id = 'completed-en'") == [
        ("completed-en", "completed")
    ]
