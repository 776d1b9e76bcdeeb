"""Two appliances of one site share dial work through one mosquitto 2 and one Kamailio:
`edgecall run` twice, head office publishing one item per number on the site's work
topic, one box killed with SIGKILL half-way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from edgecall.dialer import DialQueue
from edgecall.mqtt.site_work import WorkItem
from tests.harness.kamailio import Kamailio
from tests.harness.lab import USERS, DaemonProcess, NotifySocket, write_appliance_config
from tests.harness.mosquitto import Mosquitto
from tests.sip.sip_helpers import rtp_base

pytestmark = pytest.mark.slow

SITE = "branch-01"
WORK = f"edgecall/{SITE}/work/dial"
SECOND = ("edge-02", "1004", "pw-1004")  # appliance id, SIP extension, password
TAKEOVER_S = 2


class Outcomes:
    """Every outcome of the site's boxes, by box, and the items on the work topic."""

    def __init__(self) -> None:
        self.by_box: dict[str, list[dict]] = {}
        self.items: list[dict] = []

    def refs(self, box: str | None = None) -> list[str]:
        boxes = [box] if box else list(self.by_box)
        return sorted(o["ref"] for b in boxes for o in self.by_box.get(b, []))

    async def until(self, count: int, timeout: float, logs: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(self.refs()) < count:
            if loop.time() > end:
                raise AssertionError(f"{self.refs()} after {timeout} s\n{logs}")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def head_office(broker: Mosquitto) -> AsyncIterator[tuple[aiomqtt.Client, Outcomes]]:
    outcomes = Outcomes()
    async with aiomqtt.Client(broker.host, broker.port, identifier="office") as client:
        await client.subscribe(f"edgecall/{SITE}/+/outcomes", qos=1)
        await client.subscribe(WORK, qos=1)

        async def collect() -> None:
            async for msg in client.messages:
                body = json.loads(msg.payload)
                if str(msg.topic) == WORK:
                    outcomes.items.append(body)
                else:
                    outcomes.by_box.setdefault(body["appliance_id"], []).append(body)

        task = asyncio.create_task(collect())
        try:
            yield client, outcomes
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def in_group(daemon: DaemonProcess, timeout: float = 30.0) -> None:
    """Until the box is registered and in the site's shared-subscription group."""
    deadline = time.monotonic() + timeout
    while not all(s in daemon.log(400) for s in ("registration: 200 OK", "site work: in group")):
        if time.monotonic() > deadline:
            raise AssertionError(f"not in the site's group in {timeout:.0f} s:\n{daemon.log(40)}")
        await asyncio.sleep(0.2)


async def publish(client: aiomqtt.Client, first: int, *refs: str) -> None:
    """One item per ref; its number is not registered, so each call ends at once (404)."""
    for i, ref in enumerate(refs):
        item = WorkItem(
            f"item-{ref}",
            str(first + i),
            campaign="retail-en",
            ref=ref,
            customer_id=f"cust-{ref}",
            group="movers",
        )
        await client.publish(WORK, json.dumps(item.body()), qos=1)


async def test_two_boxes_share_the_work_and_a_killed_box_loses_no_item(tmp_path: Path):
    kamailio = Kamailio({**USERS, SECOND[1]: SECOND[2]})
    kamailio.start()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    site_work = [
        "mqtt.site_work.enabled=true",
        f"mqtt.site_work.takeover_after_s={TAKEOVER_S}",
        "mqtt.site_work.hand_back_after_s=2",
    ]
    daemons: list[DaemonProcess] = []
    for name, sets in (
        ("a", site_work),
        (
            "b",
            [
                *site_work,
                f"appliance.appliance_id={SECOND[0]}",
                f"sip.extension='{SECOND[1]}'",
                f"sip.password={{file: {tmp_path / 'b' / 'sip-password'}}}",
            ],
        ),
    ):
        (tmp_path / name).mkdir()
        path = write_appliance_config(
            tmp_path / name,
            kamailio=kamailio,
            broker=broker,
            prompt_wavs={},
            rtp_base=rtp_base(),
            sets=sets,
            models={"acoustic_emotion": None},
        )
        if name == "b":
            (tmp_path / "b" / "sip-password").write_text(SECOND[2])
        notify = NotifySocket(tmp_path / name / "notify.sock")
        daemons.append(DaemonProcess(path, notify, tmp_path / name / "daemon.log"))
    first, second = daemons
    # a redial an earlier call of box a asked for, due now: it goes to the site's queue
    dials = DialQueue(tmp_path / "a" / "state" / "dials.sqlite")
    dials.add("2099", time.time(), kind="redial", ref="redial", origin_call_id="c-1", attempt=2)
    dials.close()
    logs = lambda: "\n".join(d.log(60) for d in daemons)  # noqa: E731
    try:
        # head office listens before the boxes start: box a hands the due redial to the site's
        # queue, and a box may place it, as soon as it runs
        async with head_office(broker) as (client, outcomes):
            for d in daemons:
                d.start()
            await asyncio.gather(*(d.ready(timeout=120) for d in daemons))
            # ready comes before a box has joined the site's group: items published then
            # all go to the box that has
            await asyncio.gather(*(in_group(d) for d in daemons))
            await publish(client, 2000, *(f"r{i}" for i in range(6)))
            await outcomes.until(7, 90, logs())
            assert outcomes.refs() == ["r0", "r1", "r2", "r3", "r4", "r5", "redial"], logs()
            # the box that held it published it (a full box may hand it back once more)
            redial, *again = [i for i in outcomes.items if i["ref"] == "redial"]
            assert (redial["item_id"], redial["attempt"]) == ("redial-c-1-2", 2)
            assert redial["appliance_id"] == "edge-01"
            assert all(i["item_id"] == "redial-c-1-2" for i in again)
            assert outcomes.refs("edge-01") and outcomes.refs("edge-02"), outcomes.refs("edge-01")
            # the customer travels with the item to whichever box placed it
            customers = {
                o["ref"]: (o["customer_id"], o["customer_group"])
                for box in outcomes.by_box.values()
                for o in box
            }
            assert customers["r3"] == ("cust-r3", "movers")
            assert customers["redial"] == (None, "general")

            second.signal(signal.SIGKILL)  # no clean stop: its session stays at the broker
            await second.wait_exit(20)
            await publish(client, 2100, *(f"s{i}" for i in range(6)))  # some go to its session
            await outcomes.until(13, 60 + 10 * TAKEOVER_S, logs())
        after = [r for r in outcomes.refs() if r.startswith("s")]
        assert after == [f"s{i}" for i in range(6)], logs()
        assert not [r for r in outcomes.refs("edge-02") if r.startswith("s")]
        for _ in range(100):  # the takeover ends the session after its last item
            if "edge-02-work vanished; 3 waiting items back" in first.log(400):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no takeover of 3 items logged:\n{first.log()}")
    finally:
        for d in daemons:
            d.stop(timeout=60)
            d.notify.close()
        broker.close()
        kamailio.cleanup()
