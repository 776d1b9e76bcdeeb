"""End-to-end: the daemon answers a real SIP call, analyses it, acts and reports.

Each test runs `edgecall run` as its own process against Kamailio and mosquitto
on loopback, with a PJSUA2 caller that speaks espeak-ng WAVs, and asserts what
head office receives over MQTT, what the caller hears, and what systemd is told.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgecall.validation import schema_errors
from tests.e2e.conftest import APPLIANCE, CALLER
from tests.sip.audio_match import read_wav, window_correlations
from tests.sip.sip_helpers import make_wav

pytestmark = pytest.mark.slow


def call_messages(subscriber, call_id: str) -> list[dict]:
    topic = f"calls/{call_id}/events"
    return subscriber.on(topic) + [o for o in subscriber.on("outcomes") if o["call_id"] == call_id]


def speech_then_silence(path: Path, lines: list[str], gap_s: float = 1.8) -> Path:
    """A caller who says each line, then pauses long enough for the ASR endpoint."""
    parts = [make_wav(path.with_name(f"{path.stem}-{i}.wav"), line) for i, line in enumerate(lines)]
    padded = []
    for part in parts:
        out = part.with_name(part.stem + "-pad.wav")
        subprocess.run(["sox", str(part), str(out), "pad", "0", str(gap_s)], check=True)
        padded.append(str(out))
    subprocess.run(["sox", *padded, str(path)], check=True)
    return path


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
    messages = call_messages(office, outcome["call_id"])
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    for m in messages + [sms]:
        assert schema_errors(m) == [], m
    quality = [s for m in messages if m.get("type") == "quality" for s in m["samples"]]
    assert quality and all(s["source"] == "sip_header" for s in quality)
    await peer.wait("recorded", timeout=20)
    # the caller heard the network-problem notice before the line went dead
    scores = window_correlations(read_wav(prompt_wavs["network_problem"]), read_wav(heard))
    assert scores and np.median(scores) > 0.8, scores


async def test_a_normal_call_is_understood_and_completed(running, caller, tmp_path):
    # Acoustic emotion off: this caller is a speech synthesiser, and the text decides alone
    # (config.yaml documents this setting); the turn events say which sources were used.
    daemon, office = await running(models={"acoustic_emotion": None})
    peer = caller()
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    talk = speech_then_silence(
        tmp_path / "talk.wav",
        ["Hello, what plan is it?", "Sounds good, I am interested, sign me up. Thank you!"],
    )
    peer.send(
        cmd="call",
        to=APPLIANCE,
        play=str(talk),
        play_delay=6.0,
        headers={"X-Signal-Strength": "-85"},
    )
    outcome = await office.wait_for("outcomes", timeout=90)
    turns = [m for m in call_messages(office, outcome["call_id"]) if m.get("type") == "turn"]
    assert outcome["outcome"] == "completed", (turns, daemon.log())
    assert outcome["final_intent"] == 1 and outcome["final_emotion"] == 1
    assert len(turns) >= 2
    assert "interested" in turns[-1]["utterance"].lower()
    assert turns[-1]["emotion"]["sources"] == ["text"]
    assert turns[-1]["reply"]["situation"] == "closing"
    started = next(
        m for m in call_messages(office, outcome["call_id"]) if m.get("type") == "call.started"
    )
    assert (started["direction"], started["remote"], started["language"]) == (
        "inbound",
        CALLER,
        "en",
    )


async def test_sighup_with_a_broken_config_keeps_the_old_one(running, tmp_path):
    daemon, office = await running()
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good.replace("keepalive_s:", "keepalive_sec:", 1))
    daemon.signal(signal.SIGHUP)
    report = await office.wait_for("config", timeout=30)
    assert report["ok"] is False
    assert any("mqtt.keepalive_sec: unknown key" in e for e in report["errors"])
    assert daemon.proc.poll() is None
    daemon.config_path.write_text(
        good.replace("min_quality_dbm: -120.0", "min_quality_dbm: -115.0")
    )
    daemon.signal(signal.SIGHUP)
    report = await office.wait_for("config", lambda b: b["ok"], timeout=30)
    assert report["restart_needed"] == []


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
    assert any("registered" in m.get("STATUS", "") for m in daemon.notify.messages)
