"""Benchmark: messages/s through the durable outbox to a real mosquitto, and the
latency the outbox adds compared with publishing directly.

Run: make bench, or python -m tests.bench.bench_mqtt [--messages 2000] [--paced 300]
Prints one table; numbers depend on the disk (fsync) and on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import aiomqtt

from edgecall.config.mqtt import MqttConfig
from edgecall.messages import EVENT_SCHEMA, Identity, encode, envelope
from edgecall.mqtt.link import MqttLink
from edgecall.mqtt.outbox import Outbox
from tests.harness.mosquitto import Mosquitto

IDENTITY = Identity("bench", "box-1")
TOPIC_FILTER = "edgecall/bench/box-1/calls/+/events"


class Sink:
    """Subscriber recording when each numbered message first arrives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.arrived: dict[int, float] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="bench-sink") as client:
            await client.subscribe(TOPIC_FILTER, qos=1)
            self.ready.set()
            async for m in client.messages:
                n = int(m.payload.split(b'"n":', 1)[1].split(b",", 1)[0].rstrip(b"}"))
                self.arrived.setdefault(n, time.perf_counter())

    async def wait(self, count: int) -> None:
        while len(self.arrived) < count:
            await asyncio.sleep(0.002)


def event(n: int) -> dict:
    return envelope(IDENTITY, EVENT_SCHEMA, {"type": "bench", "n": n}, call_id="c1", seq=n)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def start_link(
    broker: Mosquitto, outbox: Outbox, sync: str, window: int
) -> tuple[MqttLink, asyncio.Task[None]]:
    cfg = MqttConfig(
        host="127.0.0.1", port=broker.port, stats_interval_s=3600,
        outbox={"max_inflight": window, "synchronous": sync},
    )  # fmt: skip
    link = MqttLink(cfg, IDENTITY, outbox)
    return link, asyncio.create_task(link.run())


async def fresh_outbox(state: Path, sync: str) -> Outbox:
    for f in state.glob("outbox.sqlite*"):
        f.unlink()
    return await Outbox.open(state / "outbox.sqlite", synchronous=sync)  # type: ignore[arg-type]


async def backlog(
    broker: Mosquitto, state: Path, sync: str, window: int, count: int, producers: int
) -> tuple[float, float]:
    """`producers` tasks queue `count` messages with no link (enqueue/s); then drain them."""
    outbox = await fresh_outbox(state, sync)
    sink = Sink(broker.port)
    sink_task = asyncio.create_task(sink.run())
    await sink.ready.wait()
    topic = "edgecall/bench/box-1/calls/c1/events"

    async def producer(first: int) -> None:
        for n in range(first, count, producers):
            await outbox.put(topic, encode(event(n)), kind="event", message_id=str(n))

    start = time.perf_counter()
    await asyncio.gather(*(producer(i) for i in range(producers)))
    enqueued = time.perf_counter()
    link, link_task = await start_link(broker, outbox, sync, window)
    await sink.wait(count)
    drained = time.perf_counter()
    await stop(link, link_task, outbox, sink_task)
    return count / (enqueued - start), count / (drained - enqueued)


async def live(
    broker: Mosquitto, state: Path, sync: str, window: int, count: int, paced: float
) -> list[float]:
    """Per-message latency publish_event() -> subscriber, at a steady rate."""
    outbox = await fresh_outbox(state, sync)
    sink = Sink(broker.port)
    sink_task = asyncio.create_task(sink.run())
    await sink.ready.wait()
    link, link_task = await start_link(broker, outbox, sync, window)
    while link.state != "connected":
        await asyncio.sleep(0.01)
    sent: dict[int, float] = {}
    for n in range(count):
        sent[n] = time.perf_counter()
        await link.publish_event(event(n))
        await asyncio.sleep(1 / paced)
    await sink.wait(count)
    await stop(link, link_task, outbox, sink_task)
    return [sink.arrived[n] - sent[n] for n in range(count)]


async def stop(
    link: MqttLink, link_task: asyncio.Task[None], outbox: Outbox, sink_task: asyncio.Task[None]
) -> None:
    link.stop()
    await link_task
    await outbox.close()
    sink_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sink_task


async def direct(broker: Mosquitto, count: int, paced: float) -> list[float]:
    """Same paced messages published straight with aiomqtt (QoS 1), no outbox."""
    sink = Sink(broker.port)
    sink_task = asyncio.create_task(sink.run())
    await sink.ready.wait()
    sent: dict[int, float] = {}
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-direct") as client:
        for n in range(count):
            sent[n] = time.perf_counter()
            await client.publish("edgecall/bench/box-1/calls/c1/events", encode(event(n)), qos=1)
            await asyncio.sleep(1 / paced)
        await sink.wait(count)
    sink_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sink_task
    return [sink.arrived[n] - sent[n] for n in range(count)]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        broker = Mosquitto(Path(tmp) / "broker").start()
        state = Path(tmp) / "state"
        state.mkdir()
        try:
            base = await direct(broker, args.paced_messages, args.paced)
            rows = []
            for sync in ("FULL", "NORMAL"):
                for window in (1, 20):
                    put_1, drain = await backlog(broker, state, sync, window, args.messages, 1)
                    put_20, _ = await backlog(broker, state, sync, window, args.messages, 20)
                    lat = await live(broker, state, sync, window, args.paced_messages, args.paced)
                    rows.append((sync, window, put_1, put_20, drain, lat))
        finally:
            broker.close()
    b50, b95 = pct(base, 50), pct(base, 95)
    print(
        f"\nMQTT outbox -> mosquitto on 127.0.0.1; backlog of {args.messages} messages; "
        f"latency over {args.paced_messages} messages at {args.paced:g}/s"
    )
    print(f"baseline, aiomqtt QoS 1 without outbox: p50 {b50:.2f} ms, p95 {b95:.2f} ms\n")
    head = (
        f"{'synchronous':<11} {'inflight':>8} {'enqueue/s 1':>11} {'enqueue/s 20':>12} "
        f"{'drain/s':>8} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'added p50':>10} {'added p95':>10}"
    )
    print(head)
    print("-" * len(head))
    for sync, window, put_1, put_20, drain, lat in rows:
        p50, p95 = pct(lat, 50), pct(lat, 95)
        print(
            f"{sync:<11} {window:>8} {put_1:>11.0f} {put_20:>12.0f} {drain:>8.0f} "
            f"{p50:>8.2f} {p95:>8.2f} "
            f"{p50 - b50:>10.2f} {p95 - b95:>10.2f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=2000, help="burst size for throughput")
    p.add_argument("--paced-messages", type=int, default=300, help="messages for latency")
    p.add_argument("--paced", type=float, default=200.0, help="rate of the paced run, msg/s")
    asyncio.run(main(p.parse_args()))
