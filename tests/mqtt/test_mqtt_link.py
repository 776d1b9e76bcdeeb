"""The link against a real mosquitto: status, topics, order, broker restarts, stats."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from mqtt_helpers import (
    IDENTITY,
    PREFIX,
    TcpProxy,
    collecting,
    config,
    running_link,
    wait_until,
)

from edgecall.messages import EVENT_SCHEMA, OUTCOME_SCHEMA, envelope
from edgecall.mqtt.commands import load_schema
from tests.harness.mosquitto import Mosquitto


def event(n: int, call_id: str = "c1") -> dict:
    return envelope(IDENTITY, EVENT_SCHEMA, {"type": "test", "n": n}, call_id=call_id, seq=n)


def first_arrivals(received: list) -> list[int]:
    """Event numbers in order of first arrival; checks duplicates repeat the same id."""
    seen: dict[str, int] = {}
    order: list[int] = []
    for m in received:
        doc = m.json()
        if doc["message_id"] in seen:
            assert seen[doc["message_id"]] == doc["n"], "one message id, two contents"
            continue
        seen[doc["message_id"]] = doc["n"]
        order.append(doc["n"])
    return order


async def test_status_online_then_stopped_and_topics(mosquitto: Mosquitto, state_dir: Path):
    async with collecting(mosquitto) as col:
        async with running_link(config(mosquitto.port), state_dir) as link:
            await col.wait_for(lambda ms: any(m.topic.endswith("/status") for m in ms), 10)
            assert col.on("/status")[-1].json()["state"] == "online"
            await link.publish_event(event(1, "call-a"))
            await link.publish_outcome(
                envelope(IDENTITY, OUTCOME_SCHEMA, {"result": "completed"}, call_id="call-a")
            )
            await link.publish_prompt("8001", envelope(IDENTITY, "edgecall.prompt/1", {"t": "hi"}))
            await col.wait_for(lambda ms: len(ms) >= 5, 10)
        await col.wait_for(lambda ms: col.on("/status")[-1].json()["state"] == "stopped", 10)
    topics = [m.topic for m in col.messages if not m.topic.endswith(("/status", "/stats"))]
    assert topics == [
        f"{PREFIX}/calls/call-a/events",
        f"{PREFIX}/outcomes",
        f"{PREFIX}/agents/8001/prompts",
    ]
    status = Draft202012Validator(load_schema("status.json"))
    for m in col.on("/status"):
        status.validate(m.json())
    assert link.outbox.depth == 0


async def test_status_is_retained_for_late_subscribers(mosquitto: Mosquitto, state_dir: Path):
    async with running_link(config(mosquitto.port), state_dir) as link:
        await wait_until(lambda: link.state == "connected", 10, "connection")
        async with collecting(mosquitto, f"{PREFIX}/status", client_id="late", clean=True) as col:
            await col.wait_for(lambda ms: len(ms) >= 1, 10)
            assert col.messages[0].retain
            assert col.messages[0].json()["state"] == "online"


async def test_stats_published_and_valid(mosquitto: Mosquitto, state_dir: Path):
    provider = {"active_calls": 2, "registration": "registered"}
    cfg = config(mosquitto.port)
    async with (
        collecting(mosquitto, f"{PREFIX}/stats") as col,
        running_link(cfg, state_dir, stats_provider=lambda: provider),
    ):
        await col.wait_for(lambda ms: len(ms) >= 1, 10)
    doc = col.messages[0].json()
    Draft202012Validator(load_schema("stats.json")).validate(doc)
    assert doc["active_calls"] == 2
    assert doc["link"]["state"] == "connected"
    assert doc["outbox"]["depth"] == 0


async def test_disabled_link_only_queues(mosquitto: Mosquitto, state_dir: Path):
    async with running_link(config(mosquitto.port, enabled=False), state_dir) as link:
        await link.publish_outcome(envelope(IDENTITY, OUTCOME_SCHEMA, {"r": 1}, call_id="c1"))
        assert link.state == "disabled" and link.outbox.depth == 1
        assert link.stats()["link"]["connections"] == 0


async def test_broker_down_at_start_then_up(
    mosquitto: Mosquitto, state_dir: Path, caplog: pytest.LogCaptureFixture
):
    mosquitto.stop()
    caplog.set_level(logging.WARNING, "edgecall.mqtt")
    async with running_link(config(mosquitto.port), state_dir) as link:
        for n in range(5):
            await link.publish_event(event(n))
        await wait_until(lambda: link.state == "unreachable", 10, "unreachable state")
        stats = link.stats()
        assert stats["link"]["connected"] is False
        assert "refused" in stats["link"]["last_error"].lower()
        assert stats["outbox"]["depth"] == 5
        assert any("unreachable" in r.getMessage() for r in caplog.records)
        mosquitto.start()
        async with collecting(mosquitto, f"{PREFIX}/calls/+/events") as col:
            await wait_until(lambda: link.outbox.depth == 0, 15, "outbox drained")
            await col.wait_for(lambda ms: len(ms) >= 5, 10)
    assert first_arrivals(col.messages) == list(range(5))


@pytest.mark.slow
async def test_thousand_events_across_two_broker_restarts(tmp_path: Path, state_dir: Path):
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()
    try:
        async with (
            collecting(broker, f"{PREFIX}/calls/+/events") as col,
            running_link(config(broker.port), state_dir) as link,
        ):

            async def produce() -> None:
                for n in range(1000):
                    await link.publish_event(event(n))
                    if n % 50 == 0:
                        await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            for threshold in (200, 550):
                await col.wait_for(lambda ms, t=threshold: len(ms) >= t, 30)
                broker.stop()  # mid-stream: the link loses its connection and in-flight acks
                await asyncio.sleep(0.3)
                broker.start()
            await producer
            await wait_until(lambda: link.outbox.depth == 0, 30, "outbox drained")
            await col.wait_for(lambda ms: len(first_arrivals(ms)) >= 1000, 30)
            assert link.connections >= 3
    finally:
        broker.close()
    assert first_arrivals(col.messages) == list(range(1000))


async def test_network_cut_mid_stream_no_gaps(mosquitto: Mosquitto, state_dir: Path):
    proxy = TcpProxy(mosquitto.port)
    await proxy.restore()
    async with (
        collecting(mosquitto, f"{PREFIX}/calls/+/events") as col,
        running_link(config(proxy.port), state_dir) as link,
    ):
        for n in range(300):
            await link.publish_event(event(n))
        await col.wait_for(lambda ms: len(ms) >= 50, 10)
        await proxy.cut()
        await wait_until(lambda: link.state != "connected", 10, "link noticing the cut")
        for n in range(300, 400):
            await link.publish_event(event(n))
        await proxy.restore()
        await wait_until(lambda: link.outbox.depth == 0, 20, "outbox drained")
        await col.wait_for(lambda ms: len(first_arrivals(ms)) >= 400, 10)
    assert first_arrivals(col.messages) == list(range(400))
    assert link.connections >= 2


@pytest.mark.slow
async def test_broker_sigkill_delivers_everything_unacknowledged(
    mosquitto: Mosquitto, state_dir: Path
):
    """After a SIGKILL mosquitto has lost its in-memory queues; what the appliance had not
    yet had acknowledged (and everything queued during the outage) must still arrive."""
    proxy = TcpProxy(mosquitto.port)
    await proxy.restore()
    async with (
        collecting(mosquitto, f"{PREFIX}/#") as col,
        running_link(config(proxy.port), state_dir) as link,
    ):
        for n in range(300):
            await link.publish_event(event(n))
        await col.wait_for(lambda ms: len(ms) >= 50, 10)
        await proxy.cut()  # hold the appliance off until the test subscriber is back
        mosquitto.kill()
        for n in range(300, 400):
            await link.publish_event(event(n))
        outcome = envelope(IDENTITY, OUTCOME_SCHEMA, {"result": "completed"}, call_id="c1")
        await link.publish_outcome(outcome)
        pending = {m.message_id for m in await link.outbox.peek(0, 10_000)}
        await wait_until(lambda: not col.connected.is_set(), 10, "subscriber disconnect")
        mosquitto.start()
        await asyncio.wait_for(col.connected.wait(), 10)
        await proxy.restore()
        await wait_until(lambda: link.outbox.depth == 0, 20, "outbox drained")
        await col.wait_for(lambda ms: pending <= {json_id(m) for m in ms}, 10)
    events = [m for m in col.messages if m.topic.endswith("/events")]
    order = first_arrivals(events)
    assert order == sorted(order)
    assert set(range(300, 400)) <= set(order)
    assert [m.json()["message_id"] for m in col.on("/outcomes")] == [outcome["message_id"]]


def json_id(m) -> str | None:
    try:
        return m.json().get("message_id")
    except ValueError:
        return None
