"""Helpers for the MQTT tests: a reconnecting subscriber and link factories."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from edgecall.config.mqtt import MqttConfig
from edgecall.messages import Identity
from edgecall.mqtt.link import MqttLink
from edgecall.mqtt.outbox import Outbox
from tests.harness.mosquitto import Mosquitto, free_port

IDENTITY = Identity(site_id="site-1", appliance_id="box-1")
PREFIX = "edgecall/site-1/box-1"


def config(port: int, **overrides: Any) -> MqttConfig:
    """Link settings for tests: quick reconnects, quick stats."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.5,
        "stats_interval_s": 5.0,
        "keepalive_s": 5,
    }
    base.update(overrides)
    return MqttConfig.model_validate(base)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Collector:
    """Subscriber that reconnects by itself; persistent session so a clean broker
    restart (with persistence) keeps the messages queued for it."""

    host: str
    port: int
    topic: str
    client_id: str = "test-collector"
    clean: bool = False
    username: str | None = None
    password: str | None = None
    messages: list[Received] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    clean_session=self.clean,
                    keepalive=5,
                    username=self.username,
                    password=self.password,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        self.messages.append(Received(str(m.topic), payload, bool(m.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not predicate(self.messages):
            if loop.time() > end:
                raise AssertionError(
                    f"timed out after {timeout} s; got {len(self.messages)} messages, last: "
                    f"{[(m.topic, m.payload[:80]) for m in self.messages[-3:]]}"
                )
            await asyncio.sleep(0.02)

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]


@contextlib.asynccontextmanager
async def collecting(
    broker: Mosquitto, topic: str = f"{PREFIX}/#", **kw: Any
) -> AsyncIterator[Collector]:
    col = Collector(broker.host, broker.port, topic, **kw)
    col._task = asyncio.create_task(col._run())
    try:
        await asyncio.wait_for(col.connected.wait(), 10)
        yield col
    finally:
        col._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await col._task


@contextlib.asynccontextmanager
async def running_link(cfg: MqttConfig, state_dir: Path, **kw: Any) -> AsyncIterator[MqttLink]:
    """An outbox + link running in the background; stopped cleanly afterwards."""
    outbox = await Outbox.for_config(cfg.outbox, state_dir)
    link = MqttLink(cfg, IDENTITY, outbox, **kw)
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        link.stop()
        await asyncio.wait_for(task, 20)
        await outbox.close()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class TcpProxy:
    """Loopback TCP forwarder standing in for the network between appliance and broker.

    `cut()` drops every connection and refuses new ones (a network cut as the
    appliance sees it); `restore()` lets connections through again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}
