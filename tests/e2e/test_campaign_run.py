"""A 20-number campaign through real SIP (issue 18 part 4): `edgecall run`, Kamailio,
mosquitto, and callees that answer, are busy, decline or let it ring. Head office
imports the list and starts the run over MQTT; every number ends in exactly one final
state, none on the do-not-call list is called, and none outside its calling hours."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from edgecall.dnc import DoNotCallList
from edgecall.validation import schema_errors
from tests.harness.kamailio import Kamailio
from tests.harness.lab import USERS, DaemonProcess, NotifySocket, write_appliance_config
from tests.harness.mosquitto import Mosquitto
from tests.harness.sip_peer import sip_peers
from tests.sip.sip_helpers import rtp_base

pytestmark = pytest.mark.slow

PREFIX = "edgecall/branch-01/edge-01"
MODES = {"2001": "answer", "2002": "busy", "2003": "decline", "2004": "ignore"}
# 20 numbers, five ringing each callee; two of them on the do-not-call list
NUMBERS = {f"30{i:02d}": f"200{i // 5 + 1}" for i in range(20)}
BARRED = ("3001", "3006")
HOURS = "09:00-17:00"


def zones_now() -> tuple[str, str]:
    """A time zone where it is now within HOURS, and one where it is not."""
    inside = outside = None
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
        hour = datetime.now(ZoneInfo(name)).hour
        if 10 <= hour < 16 and inside is None:
            inside = name
        if (hour < 8 or hour >= 18) and outside is None:
            outside = name
    assert inside and outside
    return inside, outside


async def test_a_campaign_run_gives_every_number_one_final_state(tmp_path: Path):
    inside, outside = zones_now()
    # the last four numbers are customers somewhere it is night: never called now
    late = [n for n in NUMBERS][-4:]
    rows = ["number,customer_id,time_zone"] + [
        f"{n},cust-{n},{outside if n in late else inside}" for n in NUMBERS
    ]
    callees = {u: f"pw-{u}" for u in MODES}
    kamailio = Kamailio({**USERS, **callees}, aliases=NUMBERS)
    kamailio.start()
    broker = Mosquitto(tmp_path / "mosquitto").start()
    state = tmp_path / "state"
    dnc = DoNotCallList(state / "dnc.sqlite")
    dnc.add_many(list(BARRED), reason="asked", t=time.time())
    dnc.close()
    hours = {d: [HOURS] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    dialing = {"hours": hours, "max_attempts": 1, "max_concurrent_calls": 2}
    path = write_appliance_config(
        tmp_path,
        kamailio=kamailio,
        broker=broker,
        prompt_wavs={},
        rtp_base=rtp_base(),
        models={"acoustic_emotion": None},
        sets=[
            "sip.ring_timeout_s=5",
            "rules.conversation.silence_s=1.5",
            "rules.conversation.silence_reprompts=0",
            f"campaigns.retail-zh.dialing={json.dumps(dialing)}",
        ],
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = DaemonProcess(path, notify, tmp_path / "daemon.log")
    with sip_peers(kamailio, tmp_path) as peer:
        peers = [peer(u, mode=m) for u, m in MODES.items()]
        try:
            for p in peers:
                await p.wait("reg", where=lambda e: e["code"] == 200)
            daemon.start()
            await daemon.ready(timeout=120)
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe(f"{PREFIX}/#", qos=1)
                progress, started, replies = [], [], {}

                async def collect() -> None:
                    async for msg in client.messages:
                        topic = str(msg.topic)
                        body = json.loads(msg.payload)
                        if topic.endswith("/campaigns"):
                            assert schema_errors(body) == [], body
                            progress.append(body)
                        elif topic.endswith("/events") and body.get("type") == "call.started":
                            started.append(body)
                        elif "/reply" in topic:
                            replies[topic.split("/")[-2]] = body

                task = asyncio.create_task(collect())
                for name, args in (
                    ("list-import", {"campaign": "retail-zh", "csv": "\n".join(rows) + "\n"}),
                    ("campaign-start", {"campaign": "retail-zh"}),
                ):
                    body = {"request_id": name, "args": args}
                    await client.publish(f"{PREFIX}/cmd/{name}", json.dumps(body), qos=1)
                    for _ in range(200):
                        if name in replies:
                            break
                        await asyncio.sleep(0.1)
                    assert replies.get(name, {}).get("ok"), (replies, daemon.log())
                assert replies["list-import"]["result"]["imported"] == 20
                deadline = time.monotonic() + 150
                while time.monotonic() < deadline:
                    last = progress[-1] if progress else {}
                    if last.get("remaining") == len(late) and last.get("calling_now") == 0:
                        break
                    await asyncio.sleep(0.5)
                else:
                    raise AssertionError(f"{progress[-1:]}\n{daemon.log(80)}")
                task.cancel()
        finally:
            daemon.stop(timeout=60)
            notify.close()
    db = sqlite3.connect(state / "dials.sqlite")
    finals = dict(db.execute("SELECT dial, final FROM campaign_numbers").fetchall())
    attempts = dict(db.execute("SELECT dial, attempts FROM campaign_numbers").fetchall())
    broker.close()
    kamailio.cleanup()
    assert set(finals) == set(NUMBERS)
    for n, user in NUMBERS.items():
        if n in late:  # outside its calling hours: not called, still waiting
            assert (finals[n], attempts[n]) == (None, 0), n
        elif n in BARRED:
            assert (finals[n], attempts[n]) == ("do_not_call", 0), n
        elif MODES[user] == "answer":
            assert finals[n] not in (None, "unreachable", "do_not_call"), (n, finals[n])
        else:  # busy, declined, rang out: one attempt allowed
            assert (finals[n], attempts[n]) == ("unreachable", 1), (n, finals[n])
    called = {b["remote"] for b in started}
    assert not called & (set(late) | set(BARRED))
    assert called == set(NUMBERS) - set(late) - set(BARRED)
    last = progress[-1]
    assert last["finals"]["do_not_call"] == 2 and last["finals"]["unreachable"] == 10
    assert (last["answered"], last["calls"], last["numbers"]) == (4, 14, 20)
