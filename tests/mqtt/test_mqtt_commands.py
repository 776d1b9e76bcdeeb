"""Commands over a real broker: round trips, malformed input, handler faults."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from jsonschema import Draft202012Validator
from mqtt_helpers import PREFIX, collecting, config, running_link

from edgecall.mqtt.commands import CommandError, CommandRequest, load_schema
from tests.harness.mosquitto import Mosquitto

REPLY = Draft202012Validator(load_schema("command-reply.json"))


async def test_command_round_trips_and_malformed_commands(mosquitto: Mosquitto, state_dir: Path):
    calls: list[CommandRequest] = []

    async def dial(req: CommandRequest) -> dict[str, Any]:
        calls.append(req)
        return {"queued": len(req.args["numbers"])}

    async def cancel_redial(req: CommandRequest) -> dict[str, Any]:
        raise CommandError("not_found", f"no redial for {req.args}")

    async def broken(req: CommandRequest) -> dict[str, Any]:
        raise RuntimeError("handler bug")

    cfg = config(mosquitto.port, max_command_bytes=1024)
    async with (
        collecting(mosquitto, f"{PREFIX}/cmd/+/reply") as col,
        running_link(cfg, state_dir) as link,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hq") as hq,
    ):
        link.register_command("dial", dial)
        link.register_command("cancel-redial", cancel_redial)
        link.register_command(
            "selftest", broken, args_schema={"type": "object", "additionalProperties": False}
        )
        while link.state != "connected":
            await asyncio.sleep(0.02)

        async def send(name: str, payload: bytes | str) -> dict:
            before = len(col.on(f"/cmd/{name}/reply"))
            await hq.publish(f"{PREFIX}/cmd/{name}", payload, qos=1)
            await col.wait_for(lambda ms: len(col.on(f"/cmd/{name}/reply")) > before, 10)
            reply = col.on(f"/cmd/{name}/reply")[-1].json()
            REPLY.validate(reply)
            return reply

        def cmd(rid: str, **args: Any) -> str:
            return json.dumps({"request_id": rid, "args": args})

        pong = await send("ping", cmd("r1"))
        assert pong["ok"] and pong["request_id"] == "r1" and pong["result"]["pong"] is True

        numbers = [{"number": "13800138000"}, {"number": "+8613900139000", "ref": "lead-7"}]
        dialled = await send("dial", cmd("r2", numbers=numbers, campaign="spring"))
        assert dialled == {**dialled, "ok": True, "request_id": "r2", "result": {"queued": 2}}
        assert calls[0].args["numbers"] == numbers

        again = await send("dial", cmd("r2", numbers=numbers, campaign="spring"))
        assert again["result"] == {"queued": 2} and len(calls) == 1  # QoS 1 repeat: not rerun

        def error(reply: dict) -> str:
            assert reply["ok"] is False
            return reply["error"]["code"]

        assert error(await send("dial", b"{not json")) == "bad_json"
        assert (await send("dial", b"\xff\xfe")).get("request_id") is None
        assert error(await send("dial", cmd("r3", numbers="13800138000"))) == "invalid"
        assert error(await send("dial", cmd("r4"))) == "invalid"  # numbers missing
        assert error(await send("dial", json.dumps({"args": {}}))) == "invalid"  # no request_id
        assert error(await send("dial", json.dumps([1, 2]))) == "invalid"
        bad = await send("ping", cmd("r5", extra=1))
        assert error(bad) == "invalid" and bad["request_id"] == "r5"
        assert error(await send("format-disk", cmd("r6"))) == "unknown_command"
        assert error(await send("reload-config", cmd("r7"))) == "unavailable"
        big = await send("dial", json.dumps({"request_id": "r8", "pad": "x" * 2000}))
        assert error(big) == "too_large" and big["request_id"] is None
        assert error(await send("cancel-redial", cmd("r9", all=True))) == "not_found"
        assert error(await send("cancel-redial", cmd("r10", all=True, number="123"))) == "invalid"
        assert error(await send("selftest", cmd("r11"))) == "handler_error"
        assert (await send("ping", cmd("r13")))["ok"]  # still alive after all that
        assert link.connections == 1
        stats = link.stats()["link"]
        assert stats["commands"] >= 15 and stats["command_errors"] >= 11


async def test_do_not_call_list_round_trip(mosquitto: Mosquitto, state_dir: Path):
    """Head office adds, lists and removes numbers; the list is the one the dialer reads."""
    from edgecall.dnc import DncCommands, DoNotCallList

    dnc = DoNotCallList(state_dir / "dnc.sqlite")
    async with (
        collecting(mosquitto, f"{PREFIX}/cmd/+/reply") as col,
        running_link(config(mosquitto.port), state_dir) as link,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hq") as hq,
    ):
        while link.state != "connected":
            await asyncio.sleep(0.02)

        async def send(name: str, rid: str, **args: Any) -> dict:
            before = len(col.on(f"/cmd/{name}/reply"))
            payload = json.dumps({"request_id": rid, "args": args})
            await hq.publish(f"{PREFIX}/cmd/{name}", payload, qos=1)
            await col.wait_for(lambda ms: len(col.on(f"/cmd/{name}/reply")) > before, 10)
            reply = col.on(f"/cmd/{name}/reply")[-1].json()
            REPLY.validate(reply)
            assert reply["request_id"] == rid
            return reply

        early = await send("dnc-list", "n0")
        assert early["ok"] is False and early["error"]["code"] == "unavailable"
        DncCommands(dnc).register(link)

        added = await send("dnc-add", "n1", numbers=["+86 138 0013 8000", "13900139000"])
        assert added["ok"] and added["result"] == {"added": 2, "already_listed": 0, "count": 2}
        assert dnc.contains("sip:+8613800138000@pbx")  # what the dialer asks

        page = await send("dnc-list", "n2", limit=1)
        (entry,) = page["result"]["entries"]
        assert (entry["number"], entry["source"], entry["call_id"]) == (
            "+8613800138000",
            "head_office",
            None,
        )
        assert page["result"]["next_after"] == "+8613800138000"
        rest = await send("dnc-list", "n3", after=page["result"]["next_after"])
        assert [e["number"] for e in rest["result"]["entries"]] == ["13900139000"]
        assert rest["result"]["next_after"] is None

        bad = await send("dnc-add", "n4", numbers=["13700137000", "call me"])
        assert bad["error"]["code"] == "invalid_number" and "numbers/1" in bad["error"]["message"]
        assert not dnc.contains("13700137000")

        removed = await send("dnc-remove", "n5", numbers=["0086-138-0013-8000"])
        assert removed["result"] == {"removed": 1, "not_listed": 0, "count": 1}
        left = await send("dnc-list", "n6")
        assert [e["number"] for e in left["result"]["entries"]] == ["13900139000"]
        assert not dnc.contains("+8613800138000")
    dnc.close()


async def test_slow_handler_gets_timeout_reply(mosquitto: Mosquitto, state_dir: Path):
    async def slow(req: CommandRequest) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    cfg = config(mosquitto.port, command_timeout_s=0.2)
    async with (
        collecting(mosquitto, f"{PREFIX}/cmd/+/reply") as col,
        running_link(cfg, state_dir) as link,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hq") as hq,
    ):
        link.register_command("reload-config", slow)
        while link.state != "connected":
            await asyncio.sleep(0.02)
        await hq.publish(f"{PREFIX}/cmd/reload-config", b'{"request_id": "t1"}', qos=1)
        await col.wait_for(lambda ms: len(ms) >= 1, 10)
    reply = col.messages[0].json()
    assert reply["error"]["code"] == "timeout" and reply["request_id"] == "t1"


async def test_retained_command_is_refused_not_rerun(mosquitto: Mosquitto, state_dir: Path):
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hq") as hq:
        await hq.publish(f"{PREFIX}/cmd/ping", b'{"request_id": "old"}', qos=1, retain=True)
    async with (
        collecting(mosquitto, f"{PREFIX}/cmd/+/reply") as col,
        running_link(config(mosquitto.port), state_dir),
    ):
        await col.wait_for(lambda ms: len(ms) >= 1, 10)
    reply = col.messages[0].json()
    assert reply["ok"] is False and reply["error"]["code"] == "retained"


def test_register_rejects_bad_names_and_custom_without_schema(tmp_path: Path):
    from edgecall.mqtt.commands import CommandRegistry

    reg = CommandRegistry(max_bytes=1024)

    async def h(req: CommandRequest) -> None:
        return None

    with pytest.raises(ValueError, match="must match"):
        reg.register("Bad/Name", h)
    with pytest.raises(ValueError, match="args_schema"):
        reg.register("custom", h)
