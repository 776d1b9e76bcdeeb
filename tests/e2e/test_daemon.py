"""End-to-end: the daemon answers a real SIP call, analyses it, acts and reports.

Each test runs `edgecall run` as its own process against Kamailio and mosquitto
on loopback, with a PJSUA2 caller that speaks espeak-ng WAVs, and asserts what
head office receives over MQTT, what the caller hears, and what systemd is told.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime

import aiomqtt
import numpy as np
import pytest

from edgecall.inference.chinese_script import to_script
from edgecall.validation import schema_errors
from tests.e2e.conftest import AGENT, APPLIANCE, CALLER, PREFIX
from tests.harness.audio import make_wav
from tests.harness.fake_modem import FakeModem, SignalState
from tests.harness.lab import recordings_then_silence, speech_then_silence
from tests.sip.audio_match import read_wav, window_correlations

pytestmark = pytest.mark.slow


async def test_poor_signal_warns_hangs_up_and_asks_head_office_for_the_sms(
    running, caller, prompt_wavs, tmp_path
):
    daemon, office = await running()
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    heard = tmp_path / "heard.wav"
    speech = make_wav(tmp_path / "hello.wav", "Hello? Hello? Can you hear me?")
    peer.send(
        cmd="call",
        to=APPLIANCE,
        play=str(speech),
        loop=True,
        record=str(heard),
        headers={"X-Signal-Strength": "-125"},
    )
    outcome = await office.wait_for("outcomes", timeout=60)
    assert outcome["outcome"] == "poor_signal_hangup", daemon.log()
    assert sum(s is not None and s < -120 for s in outcome["window"]) >= 3
    assert outcome["sms"]["sent"] is True and outcome["sms"]["route"] == "mqtt"
    sms = await office.wait_for("sms")
    assert (sms["to"], sms["reason"]) == (CALLER, "poor_signal")
    assert "5G Unlimited plan" in sms["text"]
    messages = office.call_messages(outcome["call_id"])
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    for m in messages + [sms]:
        assert schema_errors(m) == [], m
    quality = [s for m in messages if m.get("type") == "quality" for s in m["samples"]]
    assert quality and all(s["source"] == "sip_header" for s in quality)
    await peer.wait("recorded", timeout=20)
    # the caller heard the network-problem notice before the line went dead
    scores = window_correlations(read_wav(prompt_wavs["network_problem"]), read_wav(heard))
    assert scores and np.median(scores) > 0.8, scores


async def test_modem_reports_minus_125_dbm_so_the_call_ends_and_the_modem_texts_the_caller(
    running, caller, tmp_path
):
    with FakeModem(transport="tcp", signal=SignalState.lte(-125)) as modem:
        daemon, office = await running(
            trunk={
                "sources": ["modem", "rtp"],
                "modem": {"tcp": f"127.0.0.1:{modem.port}", "command_timeout_s": 2.0},
                "sms": {"route": "modem", "timeout_s": 30.0},
            }
        )
        peer = caller()
        await peer.wait("reg", where=lambda e: e["code"] == 200)
        speech = make_wav(tmp_path / "hi.wav", "Hello, who is this?")
        peer.send(cmd="call", to=APPLIANCE, play=str(speech), loop=True)
        outcome = await office.wait_for("outcomes", timeout=60)
        assert outcome["outcome"] == "poor_signal_hangup", daemon.log()
        assert outcome["window"].count(-125.0) >= 3
        assert (outcome["sms"]["route"], outcome["sms"]["sent"]) == ("modem", True)
        messages = office.call_messages(outcome["call_id"])
        quality = [s for m in messages if m.get("type") == "quality" for s in m["samples"]]
        assert quality and {s["source"] for s in quality} == {"modem"}
        ((command, body),) = modem.sms
        assert command.startswith(f'AT+CMGS="{CALLER}"')
        assert body.decode() == (
            "Your signal was too weak and our call dropped. "
            "We will call you back about the 5G Unlimited plan."
        )


async def test_sms_route_sip_message_reaches_the_callers_phone(running, caller, tmp_path, kamailio):
    daemon, office = await running(
        trunk={
            "sms": {
                "route": "sip_message",
                "timeout_s": 20.0,
                "sip_message_uri": f"sip:{{number}}@127.0.0.1:{kamailio.port}",
            }
        }
    )
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    speech = make_wav(tmp_path / "hi.wav", "Hello? Hello?")
    peer.send(
        cmd="call", to=APPLIANCE, play=str(speech), loop=True, headers={"X-Signal-Strength": "-126"}
    )
    outcome = await office.wait_for("outcomes", timeout=60)
    assert outcome["outcome"] == "poor_signal_hangup", daemon.log()
    assert (outcome["sms"]["route"], outcome["sms"]["sent"]) == ("sip_message", True)
    message = await peer.wait("message", timeout=20)
    assert message["body"] == outcome["sms"]["text"]
    assert APPLIANCE in message["frm"]


async def test_without_a_signal_source_a_lossy_rtp_stream_triggers_the_poor_signal_rule(
    running, caller, tmp_path
):
    # No X-Signal-Strength header and no modem: quality falls back to the call's own RTP.
    # 40% of the caller's packets are dropped: -70 - 40 * 2.5 dBm, clamped to -130 dBm.
    daemon, office = await running()
    peer = caller(tx_drop_pct=40)
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    speech = make_wav(tmp_path / "hi.wav", "Hello, hello, the line is very bad.")
    peer.send(cmd="call", to=APPLIANCE, play=str(speech), loop=True)
    outcome = await office.wait_for("outcomes", timeout=60)
    assert outcome["outcome"] == "poor_signal_hangup", daemon.log()
    messages = office.call_messages(outcome["call_id"])
    quality = [s for m in messages if m.get("type") == "quality" for s in m["samples"]]
    assert {s["source"] for s in quality if s["dbm"] is not None} == {"rtp"}
    assert sum(s is not None and s < -120 for s in outcome["window"]) >= 3
    notes = [m for m in messages if m.get("type") == "quality.source"]
    assert notes and notes[0]["source_to"] in ("rtp", None)


async def test_interest_then_frustration_is_transferred_to_the_human_agent(
    running, caller, tmp_path
):
    daemon, office = await running(models={"acoustic_emotion": None})
    agent = caller(AGENT, mode="answer")
    peer = caller()
    for p in (agent, peer):
        await p.wait("reg", where=lambda e: e["code"] == 200)
    talk = speech_then_silence(
        tmp_path / "talk.wav",
        [
            "Hello, what is this about?",
            "Sounds good, I am interested. How much is it?",
            "What? That is ridiculous. This is a scam.",
            "This is a waste of time. I am really annoyed.",
        ],
        # the outcome hangs on every word ("interested", "how much"): tiny.en misheard
        # espeak-ng's "how much is it" as "how market it" once in CI
        voice="device",
    )
    peer.send(
        cmd="call",
        to=APPLIANCE,
        play=str(talk),
        play_delay=6.0,
        headers={"X-Signal-Strength": "-80"},
    )
    outcome = await office.wait_for("outcomes", timeout=120)
    messages = office.call_messages(outcome["call_id"])
    turns = [m for m in messages if m.get("type") == "turn"]
    assert outcome["outcome"] == "transferred", ([t["utterance"] for t in turns], daemon.log())
    assert outcome["target"] == AGENT
    assert [t["intent"]["tendency"] for t in turns][-2:] == [1, 1]
    assert [t["emotion"]["tendency"] for t in turns][-2:] == [-1, -1]
    # the agent's phone rings: the REFER reached extension 1003
    incoming = await agent.wait("incoming", timeout=20)
    assert incoming
    handoff = await office.wait_for(f"agents/{AGENT}/prompts", timeout=10)
    assert handoff["kind"] == "transfer_handoff" and handoff["call_id"] == outcome["call_id"]
    caller_lines = [x for x in handoff["transcript"] if x["speaker"] == "caller"]
    assert len(caller_lines) == len(turns)
    assert all({"emotion", "intent"} <= set(x) for x in caller_lines)
    assert schema_errors(handoff) == []


async def test_interested_caller_in_poor_quality_hangs_up_and_is_scheduled_for_redial(
    running, caller, tmp_path, broker
):
    daemon, office = await running(models={"acoustic_emotion": None})
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    talk = speech_then_silence(
        tmp_path / "talk.wav", ["Oh great, thank you, that sounds wonderful."], gap_s=2.5
    )
    # -110 dBm: too weak for a good call (global quality < -100), not bad enough to cut it
    peer.send(
        cmd="call",
        to=APPLIANCE,
        play=str(talk),
        play_delay=6.0,
        headers={"X-Signal-Strength": "-110"},
    )
    await office_turn(office, timeout=60)
    peer.send(cmd="hangup")
    outcome = await office.wait_for("outcomes", timeout=30)
    assert outcome["outcome"] == "redial_scheduled", daemon.log()
    assert outcome["globals"]["quality_dbm"] == -110.0
    assert outcome["globals"]["emotion"] == 1
    assert outcome["decided_by"] in ("scene_model", "default")
    assert outcome["number"] == CALLER
    due = datetime.fromisoformat(outcome["due"].replace("Z", "+00:00"))
    hung_up = datetime.fromisoformat(outcome["ts"].replace("Z", "+00:00"))
    assert 60 <= (due - hung_up).total_seconds() <= 7200
    # the redial is queued: head office can cancel it
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(
            f"{PREFIX}/cmd/cancel-redial",
            json.dumps({"request_id": "r-1", "args": {"call_id": outcome["call_id"]}}),
            qos=1,
        )
    reply = await office.wait_for("cmd/cancel-redial/reply", timeout=20)
    assert (reply["request_id"], reply["ok"], reply["result"]) == ("r-1", True, {"cancelled": 1})


async def office_turn(office, timeout: float) -> dict:
    """The first turn event of any call (the topic has the call id in it)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for topic, body, _ in office.messages:
            if topic.endswith("/events") and body.get("type") == "turn":
                return body
        await asyncio.sleep(0.1)
    raise TimeoutError("no turn event")


async def test_sighup_with_a_broken_config_keeps_the_old_one(running, tmp_path):
    daemon, office = await running()
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good.replace("keepalive_s:", "keepalive_sec:", 1))
    daemon.signal(signal.SIGHUP)
    report = await office.wait_for("config", timeout=30)
    assert schema_errors(report) == []
    assert report["ok"] is False
    assert any("mqtt.keepalive_sec: unknown key" in e for e in report["errors"])
    assert daemon.proc.poll() is None
    daemon.config_path.write_text(
        good.replace("min_quality_dbm: -120.0", "min_quality_dbm: -115.0")
    )
    daemon.signal(signal.SIGHUP)
    report = await office.wait_for("config", lambda b: b["ok"], timeout=30)
    assert report["restart_needed"] == []  # a rules change applies at once
    assert schema_errors(report) == []
    daemon.config_path.write_text(good.replace("keepalive_s: 30", "keepalive_s: 45", 1))
    daemon.signal(signal.SIGHUP)
    report = await office.wait_for("config", lambda b: b["restart_needed"], timeout=30)
    assert report["ok"] is True and report["restart_needed"] == ["mqtt"]


async def test_sigterm_mid_call_ends_it_with_an_outcome_and_unregisters(
    running, caller, tmp_path, kamailio
):
    daemon, office = await running()
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    speech = make_wav(tmp_path / "long.wav", "I am still thinking about it, let me see.")
    peer.send(
        cmd="call", to=APPLIANCE, play=str(speech), loop=True, headers={"X-Signal-Strength": "-80"}
    )
    await peer.wait("state", where=lambda e: e["state"] == "CONFIRMED", timeout=30)
    await asyncio.sleep(2)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(60) == 0, daemon.log()
    outcome = await office.wait_for("outcomes", timeout=10)
    assert outcome["outcome"] in ("abandoned", "failed", "redial_scheduled")
    assert outcome["turns"] >= 0
    status = await office.wait_for("status", lambda b: b.get("state") == "stopped", timeout=10)
    assert status["state"] == "stopped"
    assert daemon.notify.seen("STOPPING", "1")
    assert daemon.notify.seen("READY", "1")
    assert daemon.notify.seen("WATCHDOG", "1")  # pinged while the loop and SIP thread run
    assert any("registered" in m.get("STATUS", "") for m in daemon.notify.messages)


async def test_a_chinese_call_is_transcribed_by_the_multilingual_model(
    running, caller, tmp_path, shared_dir
):
    # The shipped config sends zh calls to whisper-base; the caller plays real Mandarin
    # speech with English words in it (zh-en-speech), which Whisper partly writes in
    # traditional characters: head office must get simplified text.
    daemon, office = await running(
        models={"acoustic_emotion": None},
        sip={"auto_answer": [{"answer": True, "campaign": "retail-zh", "language": "zh"}]},
    )
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    clips = [shared_dir / "datasets" / "zh-en-speech" / n for n in ("2.wav", "1.wav")]
    talk = recordings_then_silence(tmp_path / "talk.wav", clips, gap_s=2.0)
    peer.send(
        cmd="call",
        to=APPLIANCE,
        play=str(talk),
        play_delay=2.0,
        headers={"X-Signal-Strength": "-85"},
    )
    await peer.wait("playing", timeout=30)
    loop = asyncio.get_running_loop()
    # hang up once the caller has said everything (a pause inside a clip may end a turn
    # early, so two turns alone do not mean both clips were heard), or after 30 s more
    talked = loop.time() + len(read_wav(talk)) / 16000
    first = await office_turn(office, timeout=60)
    deadline = talked + 30
    while loop.time() < deadline:
        turns = [
            b for t, b, _ in office.messages if t.endswith("/events") and b.get("type") == "turn"
        ]
        if len(turns) >= 2 and loop.time() > talked:
            break
        await asyncio.sleep(0.2)
    peer.send(cmd="hangup")
    outcome = await office.wait_for("outcomes", timeout=30)
    messages = office.call_messages(outcome["call_id"])
    turns = [m for m in messages if m.get("type") == "turn"]
    texts = [t["utterance"] for t in turns]
    assert first in turns and len(turns) >= 2, (texts, daemon.log())
    started = next(m for m in messages if m.get("type") == "call.started")
    assert started["language"] == "zh"
    assert all(to_script(text, "simplified") == text for text in texts), texts
    assert any("always" in text.lower() for text in texts), texts  # the English words stay
    assert sum(1 for text in texts for c in text if "\u4e00" <= c <= "\u9fff") >= 10, texts
    assert outcome["language"] == "zh" and schema_errors(outcome) == []
