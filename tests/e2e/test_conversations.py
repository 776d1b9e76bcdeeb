"""End-to-end conversations: a real caller through the shipped English flow.

Each test runs the daemon against Kamailio and mosquitto on loopback; a PJSUA2
caller speaks lines in the box's own Piper voice with pauses (talking over the robot where its
prompt is longer than the pause, as callers do) and head office sees the path
through the flow (flow events), the turns and the one outcome.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiomqtt
import pytest

from edgecall.validation import schema_errors
from tests.e2e.conftest import AGENT, APPLIANCE, CALLER, PREFIX
from tests.harness.lab import speech_then_silence

pytestmark = pytest.mark.slow

# Acoustic emotion is off: these callers are a speech synthesiser (see test_daemon.py).
NO_ACOUSTIC = {"acoustic_emotion": None}


async def converse(running, caller, tmp_path, lines, *, dbm="-80", timeout=120, **changes):
    """Start the daemon, have the caller say `lines`, and return (daemon, office, outcome,
    the call's messages) once the outcome is in."""
    daemon, office = await running(models=NO_ACOUSTIC, **changes)
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    call = {"cmd": "call", "to": APPLIANCE, "headers": {"X-Signal-Strength": dbm}}
    if lines:
        # the box's Piper voice: these outcomes hang on short answers ("No thanks."), which
        # tiny.en hears in espeak-ng's voice as "No fangs" at times
        talk = speech_then_silence(tmp_path / "talk.wav", lines, gap_s=2.5, voice="device")
        call.update(play=str(talk), play_delay=6.0)
    peer.send(**call)
    outcome = await office.wait_for("outcomes", timeout=timeout)
    messages = office.call_messages(outcome["call_id"])
    for m in messages:
        assert schema_errors(m) == [], m
    return daemon, office, peer, outcome, messages


def of_type(messages, kind):
    return [m for m in messages if m.get("type") == kind]


def path(messages):
    return [(s["node"], s["answer"]) for s in of_type(messages, "flow")]


def heard(messages):
    return [t["utterance"] for t in of_type(messages, "turn")]


async def test_an_interested_caller_is_offered_the_plan_and_the_confirmed_yes_is_the_sale(
    running, caller, tmp_path
):
    daemon, office, _, outcome, messages = await converse(
        running,
        caller,
        tmp_path,
        [
            "Hello, what plan is it?",
            "Sounds good, I am interested. How much is it?",
            "Yes, go ahead.",
        ],
        # the offer has two variants: the call hears one, and its sale counts for it
        sets=[
            "campaigns.retail-en.prompts.offer_b={text: 'The {product} is 59 yuan a month, "
            "and the first month is free. Shall I go ahead?'}",
            "campaigns.retail-en.flow.nodes.offer.say=[offer, offer_b]",
        ],
    )
    assert outcome["outcome"] == "completed", (heard(messages), path(messages), daemon.log())
    assert (outcome["agreed"], outcome["node"]) == (True, "sale")
    nodes = [n for n, _ in path(messages)]
    # the sale came from the offer's confirmation, not from the interest before it
    assert nodes.index("offer") < nodes.index("sale")
    assert path(messages)[-1] == ("sale", "yes")
    (offer,) = [s["variant"] for s in of_type(messages, "flow") if s["node"] == "offer"]
    assert offer in ("offer", "offer_b")
    played = [p["situation"] for p in of_type(messages, "prompt.played")]
    assert offer in played and played[-1] == "sale_confirmed"
    assert of_type(messages, "prompt.played")[-1]["ended"] == "completed"  # heard to the end
    turns = of_type(messages, "turn")
    # the interest came before the yes (the voice's pause after "Hello," may make that
    # greeting a turn of its own, as a caller's pause would)
    said = [t["utterance"].lower() for t in turns]
    assert any("interested" in u for u in said[:-1]) and "yes" in said[-1], said
    assert turns[-1]["emotion"]["sources"] == ["text"]  # the text decided alone
    (started,) = of_type(messages, "call.started")
    assert (started["direction"], started["remote"], started["language"]) == (
        "inbound",
        CALLER,
        "en",
    )
    # the box's call history has it, and head office can read it and erase the caller
    history = sqlite3.connect(tmp_path / "state" / "history.sqlite")
    ((recorded, number, turns_kept),) = history.execute(
        "SELECT outcome, number, (SELECT count(*) FROM turns t WHERE t.call_id = c.call_id) "
        "FROM calls c WHERE call_id = ?",
        (outcome["call_id"],),
    ).fetchall()
    assert (recorded, number, turns_kept) == ("completed", CALLER, len(turns))
    async with aiomqtt.Client(office.host, office.port) as client:
        commands = (
            ("list-import", {"campaign": "retail-en", "csv": f"number,group\n{CALLER},vip\nx,\n"}),
            ("call-stats", {}),
            ("forget", {"number": CALLER}),
        )
        for name, args in commands:
            body = {"request_id": name, "args": args}
            await client.publish(f"{PREFIX}/cmd/{name}", json.dumps(body), qos=1)
            reply = await office.wait_for(f"cmd/{name}/reply", timeout=20)
            assert reply["ok"], reply
            if name == "list-import":  # the caller is a customer too; the bad row is reported
                assert (reply["result"]["imported"], reply["result"]["skipped"]) == (1, 1)
                assert reply["result"]["errors"][0]["line"] == 3
            elif name == "call-stats":
                assert reply["result"]["customer_lists"] == {"retail-en": {"default": 1}}
                campaign = reply["result"]["campaigns"]["retail-en"]
                assert (campaign["calls"], campaign["agreed"]) == (1, 1)
                offers = [v for v in campaign["variants"] if v["node"] == "offer"]
                assert [(v["variant"], v["group"], v["uses"], v["sales"]) for v in offers] == [
                    (offer, "general", 1, 1)
                ]
            else:
                assert reply["result"]["calls"] == 1
    assert history.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    assert history.execute("SELECT count(*) FROM customers").fetchone() == (0,)


async def test_a_refusal_at_the_offer_and_again_at_the_objection_declines_politely(
    running, caller, tmp_path
):
    daemon, office, _, outcome, messages = await converse(
        running, caller, tmp_path, ["No, I am not interested.", "No thanks."]
    )
    assert outcome["outcome"] == "failed", (heard(messages), path(messages), daemon.log())
    assert (outcome["agreed"], outcome["end_reason"], outcome["node"]) == (
        False,
        "declined",
        "declined",
    )
    assert [n for n, _ in path(messages)] == ["opening", "objection", "declined"]
    assert of_type(messages, "prompt.played")[-1]["situation"] == "closing"


async def test_an_interested_caller_in_a_meeting_is_called_back_for_the_stated_reason(
    running, caller, tmp_path
):
    daemon, office, _, outcome, messages = await converse(
        running,
        caller,
        tmp_path,
        ["Yes, I am interested, tell me more.", "Sorry, I am in a meeting right now."],
    )
    assert outcome["outcome"] == "redial_scheduled", (heard(messages), daemon.log())
    assert (outcome["decided_by"], outcome["scene"]) == ("stated_reason", "meeting")
    assert "meeting" in outcome["stated_phrase"]
    assert outcome["number"] == CALLER
    assert 1800 <= outcome["delay_s"] <= 7200  # the meeting reason's delay range
    assert path(messages)[-1][1] == "stated_reason"
    assert of_type(messages, "prompt.played")[-1]["situation"] == "callback"


async def test_a_silent_caller_is_asked_once_whether_they_are_there_then_the_call_closes(
    running, caller, tmp_path
):
    daemon, office, _, outcome, messages = await converse(
        running,
        caller,
        tmp_path,
        [],
        rules={"conversation": {"silence_s": 3.0}},
    )
    assert outcome["outcome"] == "abandoned", (path(messages), daemon.log())
    assert outcome["reason"].startswith("silence:")
    assert [a for _, a in path(messages)] == [None, "silence", "silence"]
    said = [p["situation"] for p in of_type(messages, "prompt.played")]
    assert said == ["opening", "still_there", "opening", "goodbye"]


async def test_stop_calling_me_puts_the_number_on_the_do_not_call_list(
    running, caller, tmp_path, broker
):
    daemon, office, _, outcome, messages = await converse(
        running, caller, tmp_path, ["Please stop calling me. Take me off your list."]
    )
    assert outcome["outcome"] == "failed", (heard(messages), daemon.log())
    assert outcome["end_reason"] == "do_not_call"
    (event,) = of_type(messages, "do_not_call")
    assert event["number"] == CALLER
    assert of_type(messages, "prompt.played")[-1]["situation"] == "do_not_call"
    # head office sees the number on the list, and the dialer will not call it
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for name, request, args in (
            ("dnc-list", "l-1", {"number": CALLER}),
            ("dial", "d-1", {"numbers": [{"number": CALLER}], "campaign": "retail-en"}),
        ):
            await client.publish(
                f"{PREFIX}/cmd/{name}", json.dumps({"request_id": request, "args": args}), qos=1
            )
    listed = await office.wait_for("cmd/dnc-list/reply", timeout=20)
    assert listed["ok"], listed
    (entry,) = listed["result"]["entries"]
    assert (entry["number"], entry["source"], entry["call_id"]) == (
        CALLER,
        "caller",
        outcome["call_id"],
    )
    dial = await office.wait_for("cmd/dial/reply", timeout=20)
    assert dial["ok"] and dial["result"]["queued"] == 0, dial
    assert [s["reason"] for s in dial["result"]["skipped"]] == ["do_not_call"]


async def test_pressing_0_puts_the_caller_through_to_a_human_agent(running, caller, tmp_path):
    daemon, office = await running(models=NO_ACOUSTIC)
    agent = caller(AGENT, mode="answer")
    peer = caller()
    for p in (agent, peer):
        await p.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE, headers={"X-Signal-Strength": "-80"})
    await peer.wait("media", timeout=30)
    await asyncio.sleep(2.0)  # during the opening prompt
    peer.send(cmd="dtmf", id=1, digits="0")
    outcome = await office.wait_for("outcomes", timeout=60)
    messages = office.call_messages(outcome["call_id"])
    assert outcome["outcome"] == "transferred", daemon.log()
    assert (outcome["target"], outcome["reason"]) == (AGENT, "caller pressed 0")
    assert [d["digit"] for d in of_type(messages, "dtmf")] == ["0"]
    assert await agent.wait("incoming", timeout=20)
