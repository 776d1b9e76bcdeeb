"""Boxes of one site sharing dial work through a real mosquitto 2 (MQTT 5 shared
subscriptions, persistent sessions, delayed Wills): each item is placed once, a box
takes work only while it has room, and a box that vanishes loses no item."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest

from edgecall.messages import Identity
from edgecall.mqtt.site_work import Held, SiteWork, WorkItem, WorkItemError, parse_item
from tests.mqtt.mqtt_helpers import TcpProxy, config, wait_until

DIAL = "edgecall/site-1/work/dial"
TAKEOVER_S = 1


class Box:
    """A stand-in for one appliance's dialer: `room` calls at once; a call placed is
    acknowledged at once and stays up until `hang_up_all()`."""

    def __init__(self, port: int, name: str, room: int, *, dialing: bool = True) -> None:
        self.name = name
        self.room = room
        self.dialing = dialing
        self.placed: list[WorkItem] = []
        self.up = 0
        self.most_up = 0
        self.rejected: list[str] = []
        self._wake = asyncio.Event()
        cfg = config(
            port,
            site_work={"enabled": True, "takeover_after_s": TAKEOVER_S, "hand_back_after_s": 1},
        )
        self.site = SiteWork(
            cfg,
            Identity("site-1", name),
            window=room,
            room=lambda: self.room - self.up,
            arrived=self._wake.set,
            placed_before=lambda item_id: any(i.item_id == item_id for i in self.placed),
            rejected=self._reject,
        )
        self._tasks: list[asyncio.Task[Any]] = []

    async def _reject(self, payload: bytes, error: str) -> None:
        self.rejected.append(error)

    def start(self) -> Box:
        self._tasks = [asyncio.create_task(self.site.run()), asyncio.create_task(self._dial())]
        return self

    async def _dial(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.dialing and self.up < self.room and (held := self.site.take()):
                self._place(held)

    def _place(self, held: Held) -> None:
        self.placed.append(held.item)
        self.up += 1
        self.most_up = max(self.most_up, self.up)
        self.site.done(held)

    def hang_up_all(self) -> None:
        self.up = 0
        self._wake.set()

    def start_dialing(self) -> None:
        self.dialing = True
        self._wake.set()

    async def stop(self) -> None:
        """A clean stop: the box hands back what it holds."""
        self.site.stop()
        await asyncio.wait_for(self._tasks[0], 20)
        await self.vanish()

    async def vanish(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def head_office(port: int) -> AsyncIterator[Callable[..., Any]]:
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="head-office", protocol=aiomqtt.ProtocolVersion.V5
    ) as client:

        async def publish(*numbers: str, raw: bytes | None = None) -> None:
            if raw is not None:
                await client.publish(DIAL, raw, qos=1)
            for n in numbers:
                item = WorkItem(f"item-{n}", n, campaign="retail-en", ref=f"ref-{n}")
                await client.publish(DIAL, json.dumps(item.body()).encode(), qos=1)

        yield publish


def numbers(count: int, start: int = 100) -> list[str]:
    return [f"5550{i}" for i in range(start, start + count)]


def placed(*boxes: Box) -> list[str]:
    return sorted(i.number for b in boxes for i in b.placed)


async def test_items_are_shared_and_each_placed_once(mosquitto):
    a, b = Box(mosquitto.port, "box-a", 2).start(), Box(mosquitto.port, "box-b", 2).start()
    await wait_until(lambda: a.site.stats()["connected"] and b.site.stats()["connected"], 10, "in")
    async with head_office(mosquitto.port) as publish:
        await publish(*numbers(4))
        await wait_until(lambda: len(placed(a, b)) == 4, 10, "the first four placed")
        await publish(*numbers(6, start=200))
        await asyncio.sleep(1.0)
        assert len(placed(a, b)) == 4, "both boxes are full: nothing more is placed"
        for _ in range(3):
            a.hang_up_all()
            b.hang_up_all()
            await wait_until(lambda: a.up + b.up > 0 or len(placed(a, b)) == 10, 10, "more calls")
        await wait_until(lambda: len(placed(a, b)) == 10, 10, "all ten placed")
    assert placed(a, b) == sorted(numbers(4) + numbers(6, start=200))
    assert a.placed and b.placed
    assert a.most_up <= 2 and b.most_up <= 2
    await asyncio.gather(a.stop(), b.stop())


async def test_a_full_box_hands_back_what_it_cannot_place(mosquitto):
    a, b = Box(mosquitto.port, "box-a", 2).start(), Box(mosquitto.port, "box-b", 10).start()
    await wait_until(lambda: a.site.stats()["connected"] and b.site.stats()["connected"], 10, "in")
    a.up = a.room  # box-a's calls are all busy
    async with head_office(mosquitto.port) as publish:
        await publish(*numbers(8))
        await wait_until(lambda: len(placed(a, b)) == 8, 15, "all placed")
    assert a.placed == []
    assert a.site.stats()["items_handed_back"] > 0  # round robin gave it some
    await asyncio.gather(a.stop(), b.stop())


async def test_the_items_of_a_box_that_vanishes_are_placed_by_the_other(mosquitto):
    proxy = TcpProxy(mosquitto.port)
    await proxy.restore()
    a = Box(proxy.port, "box-a", 3, dialing=False).start()  # takes nothing: a stuck box
    b = Box(mosquitto.port, "box-b", 20).start()
    await wait_until(lambda: a.site.stats()["connected"] and b.site.stats()["connected"], 10, "in")
    async with head_office(mosquitto.port) as publish:
        await publish(*numbers(6))
        await wait_until(lambda: a.site.stats()["waiting"] > 0, 10, "items waiting at box-a")
        await proxy.cut()  # box-a's power goes: no DISCONNECT, its session stays
        await a.vanish()
        await publish(*numbers(6, start=200))  # mosquitto still gives box-a's session a share
        await wait_until(lambda: len(placed(b)) == 12, 10 + 5 * TAKEOVER_S, "all placed by b")
    assert placed(b) == sorted(numbers(6) + numbers(6, start=200))
    assert a.placed == []
    await wait_until(lambda: b.site.stats()["sessions_taken_over"] == 1, 10, "the takeover")
    await b.stop()


async def test_a_box_back_within_the_takeover_delay_gets_its_own_items(mosquitto):
    proxy = TcpProxy(mosquitto.port)
    await proxy.restore()
    a = Box(proxy.port, "box-a", 3, dialing=False).start()
    b = Box(mosquitto.port, "box-b", 0).start()  # no room: never in the group
    await wait_until(lambda: a.site.stats()["connected"], 10, "box-a in")
    async with head_office(mosquitto.port) as publish:
        await publish(*numbers(3))
        await wait_until(lambda: a.site.stats()["waiting"] == 3, 10, "items waiting at box-a")
        await proxy.cut()
        await a.vanish()
        back = Box(mosquitto.port, "box-a", 3).start()  # restarted, well within 1 s
        await wait_until(lambda: len(placed(back)) == 3, 10, "its items placed")
        await asyncio.sleep(TAKEOVER_S + 1.0)
    assert placed(back) == sorted(numbers(3))
    assert b.site.stats()["sessions_taken_over"] == 0
    await asyncio.gather(back.stop(), b.stop())


async def test_a_box_that_stops_hands_back_what_it_was_given(mosquitto):
    a = Box(mosquitto.port, "box-a", 3, dialing=False).start()
    b = Box(mosquitto.port, "box-b", 3, dialing=False).start()
    await wait_until(lambda: a.site.stats()["connected"] and b.site.stats()["connected"], 10, "in")
    async with head_office(mosquitto.port) as publish:
        await publish(*numbers(6))
        await wait_until(
            lambda: a.site.stats()["waiting"] + b.site.stats()["waiting"] == 6, 10, "given out"
        )
        given_to_a = a.site.stats()["waiting"]
        await a.stop()
        b.start_dialing()
        await wait_until(lambda: len(placed(b)) == 3, 10, "b full")
        b.hang_up_all()
        await wait_until(lambda: len(placed(b)) == 6, 10, "b placed all")
    assert given_to_a > 0
    assert a.site.stats()["items_handed_back"] == given_to_a
    assert placed(b) == sorted(numbers(6))
    assert b.site.stats()["sessions_taken_over"] == 0  # a clean stop leaves no Will
    await b.stop()


async def test_a_bad_item_is_reported_once_and_the_rest_flows(mosquitto):
    a = Box(mosquitto.port, "box-a", 5).start()
    await wait_until(lambda: a.site.stats()["connected"], 10, "in")
    async with head_office(mosquitto.port) as publish:
        await publish(raw=b'{"schema": "edgecall.work-item/1", "item_id": "x", "number": "ab"}')
        await publish(raw=b"not json")
        await publish(*numbers(1))
        await wait_until(lambda: len(a.placed) == 1, 10, "the good item placed")
    assert len(a.rejected) == 2
    assert "number" in a.rejected[0] and "not JSON" in a.rejected[1]
    await a.stop()
    again = Box(mosquitto.port, "box-a", 5).start()  # acknowledged: not given again
    await wait_until(lambda: again.site.stats()["connected"], 10, "in")
    await asyncio.sleep(1.0)
    assert again.rejected == [] and again.placed == []
    await again.stop()


@pytest.mark.parametrize(
    "payload, error",
    [
        (b"{", "not JSON"),
        (b'{"schema": "edgecall.work-item/1", "number": "5551"}', "'item_id' is a required"),
        (b'{"schema": "edgecall.work-item/1", "item_id": "i", "number": "5551", "x": 1}', "x"),
        (
            b'{"schema": "edgecall.work-item/1", "item_id": "i", "number": "5551", "attempt": 0}',
            "attempt",
        ),
    ],
)
def test_parse_item_says_what_is_wrong(payload, error):
    with pytest.raises(WorkItemError, match=error):
        parse_item(payload)


def test_parse_item_reads_a_full_item():
    item = WorkItem("i-1", "+8613800000000", "retail-zh", "zh", "r-9", 2, "call-7")
    assert parse_item(json.dumps(item.body()).encode()) == item
