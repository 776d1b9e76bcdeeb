"""`edgecall tail`: live output against a real broker, config handling, formatting."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from mqtt_helpers import IDENTITY, PREFIX, config, running_link, wait_until

from edgecall.messages import EVENT_SCHEMA, OUTCOME_SCHEMA, encode, envelope
from edgecall.mqtt import tail
from edgecall.mqtt.topics import Topics
from tests.harness.mosquitto import Mosquitto


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tail.add_arguments(parser)
    return parser.parse_args(argv)


async def test_tail_prints_status_events_outcomes_prompts(mosquitto: Mosquitto, state_dir: Path):
    async with running_link(config(mosquitto.port), state_dir) as link:
        await wait_until(lambda: link.state == "connected", 10, "connection")
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecall.mqtt.tail", "--site", "site-1", "--appliance",
             "box-1", "--port", str(mosquitto.port), "--count", "4", "--timeout", "20",
             "--no-stats"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        watching = await asyncio.to_thread(proc.stderr.readline)
        assert watching.startswith(f"# watching {PREFIX}/#")
        body = {"type": "turn", "text": "我想了解一下套餐"}
        await link.publish_event(envelope(IDENTITY, EVENT_SCHEMA, body, call_id="c1", seq=1))
        await link.publish_outcome(
            envelope(IDENTITY, OUTCOME_SCHEMA, {"result": "completed"}, call_id="c1")
        )
        await link.publish_prompt("8001", envelope(IDENTITY, "edgecall.prompt/1", {"say": "hi"}))
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 4
    assert "STATUS  online (retained)" in lines[0]
    assert "EVENT   call=c1 seq=1 type=turn text=我想了解一下套餐" in lines[1]
    assert "OUTCOME call=c1 result=completed" in lines[2]
    assert "PROMPT  ext=8001 say=hi" in lines[3]


async def test_tail_timeout_before_count_exits_1(mosquitto: Mosquitto):
    args = parse("--prefix", "edgecall/x/y", "--port", str(mosquitto.port), "--count", "1",
                 "--timeout", "0.3")  # fmt: skip
    assert await asyncio.to_thread(tail.main, args) == 1


def test_tail_unreachable_broker_exits_2(capsys: pytest.CaptureFixture[str]):
    from tests.harness.mosquitto import free_port

    args = parse("--prefix", "edgecall/x/y", "--port", str(free_port()), "--timeout", "2")
    assert tail.main(args) == 2
    assert "cannot watch" in capsys.readouterr().err


def test_tail_reads_config_and_options_win(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "appliance: {site_id: sh-01, appliance_id: box-9}\nmqtt: {host: 127.0.0.1, port: 1999}\n"
    )
    settings = tail.resolve(parse("--config", str(cfg)))
    assert settings["topics"].prefix == "edgecall/sh-01/box-9"
    assert settings["port"] == 1999
    settings = tail.resolve(parse("--config", str(cfg), "--port", "2000", "--prefix", "p/q"))
    assert (settings["port"], settings["topics"].prefix) == (2000, "p/q")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: {hots: x}\n", "mqtt.hots: Extra inputs are not permitted"),
        ("mqtt: [1\n", "is not valid YAML"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_tail_bad_config_is_a_clear_error(
    tmp_path: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    assert tail.main(parse("--config", str(cfg))) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_tail_needs_a_prefix(capsys: pytest.CaptureFixture[str]):
    assert tail.main(parse("--site", "only")) == 2
    assert "--prefix" in capsys.readouterr().err
    assert tail.main(parse("--prefix", "a/#")) == 2


def test_format_message_lines():
    topics = Topics("p/s/a")
    at = datetime(2026, 1, 1, 12, 0, 1, 234000)
    fmt = lambda topic, payload, retained=False: tail.format_message(  # noqa: E731
        topics, topic, payload, retained, now=at
    )
    assert (
        fmt("p/s/a/outcomes", b"\xff") == "12:00:01.234 OUTCOME p/s/a/outcomes (1 bytes, not JSON)"
    )
    reply = encode({"request_id": "r1", "ok": False, "error": {"code": "invalid", "message": "m"}})
    assert fmt("p/s/a/cmd/dial/reply", reply).endswith("REPLY   dial request=r1 ERROR invalid: m")
    stats = encode(
        {"link": {"state": "connected"}, "outbox": {"depth": 3, "dropped": {"event": 2},
         "disk_full": True}, "active_calls": 1}
    )  # fmt: skip
    assert fmt("p/s/a/stats", stats).endswith(
        "STATS   link=connected outbox=3 dropped=2 DISK-FULL active_calls=1"
    )
    assert fmt("p/s/a/status", encode({"state": "offline"}), True).endswith(
        "STATUS  offline (retained)"
    )
    step = encode(
        {"call_id": "c1", "seq": 7, "type": "flow", "node": "offer", "answer": "yes",
         "why": "caller: 'sure'", "prompts": ["offer"], "ending": None}
    )  # fmt: skip
    assert fmt("p/s/a/calls/c1/events", step) == (
        "12:00:01.234 NODE    call=c1 seq=7 offer (yes: caller: 'sure') says offer"
    )
    end = encode(
        {"call_id": "c1", "seq": 9, "type": "flow", "node": "offer", "answer": "do_not_call",
         "why": "caller: 'stop calling'", "prompts": ["do_not_call"], "ending": "do_not_call"}
    )  # fmt: skip
    assert fmt("p/s/a/calls/c1/events", end).endswith("says do_not_call ENDS do_not_call")
