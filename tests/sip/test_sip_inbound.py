"""Inbound calls: audio both ways, prompts with barge-in, DTMF, watched headers, limits."""

from __future__ import annotations

import asyncio

import pytest

from edgecall.telephony.events import (
    CallStateChanged,
    DtmfReceived,
    IncomingCall,
    PlaybackFinished,
    QualitySample,
    RegistrationChanged,
    SipHeaderValue,
)
from tests.sip.audio_match import frames_to_signal, matches, read_wav, window_correlations
from tests.sip.sip_helpers import APPLIANCE_EXT, assert_each_call_heard, drain


async def registered_pair(appliance, peers, user="1002", **kw):
    tel, events = await appliance(**kw)
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers(user)
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    return tel, events, peer


@pytest.mark.slow
async def test_caller_audio_arrives_intact_and_caller_hears_the_prompt(
    appliance, peers, wavs, tmp_path
):
    tel, events, peer = await registered_pair(appliance, peers, watch_headers=["X-Signal-Strength"])
    recording = tmp_path / "heard-by-caller.wav"
    peer.send(
        cmd="call",
        to=APPLIANCE_EXT,
        play=str(wavs["speech"]),
        play_delay=0.3,
        record=str(recording),
        headers={"X-Signal-Strength": "-97"},
    )
    incoming = await events.wait(IncomingCall)
    assert incoming.headers.get("X-Signal-Strength") == "-97"
    header = await events.wait(SipHeaderValue)
    assert (header.call_id, header.name, header.value, header.message) == (
        incoming.call_id,
        "X-Signal-Strength",
        "-97",
        "INVITE",
    )
    frames_task = asyncio.create_task(drain(tel.audio(incoming.call_id)))
    await events.wait(CallStateChanged, where=lambda e: e.state == "confirmed")
    reason = await tel.play(incoming.call_id, wavs["prompt"])
    assert reason == "completed"
    await peer.wait("playing")
    await asyncio.sleep(0.5)
    peer.send(cmd="hangup")
    ended = await events.wait(CallStateChanged, where=lambda e: e.state == "disconnected")
    assert ended.outcome == "completed" and ended.ended_by == "remote"
    frames = await frames_task
    assert all(len(f) == 640 for f in frames)
    received, dropped = tel.frame_counts(incoming.call_id)
    assert dropped == 0 and received == len(frames)
    scores = window_correlations(read_wav(wavs["speech"]), frames_to_signal(frames))
    quality = [(q.loss_pct, q.discard_pct, q.jitter_ms) for q in events.of(QualitySample)]
    assert matches(scores), ("caller->appliance", [round(h, 2) for h in scores], quality)
    await peer.wait("recorded")
    heard = window_correlations(read_wav(wavs["prompt"]), read_wav(recording))
    assert matches(heard), ("appliance->caller", [round(h, 2) for h in heard])
    samples = events.of(QualitySample, incoming.call_id)
    assert samples and samples[-1].codec == "G722" and samples[-1].mos > 4.0


async def connected_call(appliance, peers, **call_kw):
    tel, events, peer = await registered_pair(appliance, peers, watch_headers=["X-Signal-Strength"])
    peer.send(cmd="call", to=APPLIANCE_EXT, **call_kw)
    incoming = await events.wait(IncomingCall)
    await events.wait(CallStateChanged, where=lambda e: e.state == "confirmed")
    await peer.wait("media")
    return tel, events, peer, incoming.call_id


@pytest.mark.slow
async def test_barge_in_stops_the_prompt_when_the_caller_speaks(appliance, peers, wavs):
    tel, events, peer, call_id = await connected_call(
        appliance, peers, play=str(wavs["short"]), play_delay=1.5
    )
    reason = await tel.play(call_id, wavs["prompt"], barge_in=True)
    assert reason == "barge_in"
    done = await events.wait(PlaybackFinished)
    assert (done.call_id, done.reason) == (call_id, "barge_in")
    # without barge-in the same caller speech does not interrupt
    reason = await tel.play(call_id, wavs["short"])
    assert reason == "completed"
    await tel.hangup(call_id, "done")
    ended = await events.wait(CallStateChanged, where=lambda e: e.state == "disconnected")
    assert (ended.outcome, ended.ended_by) == ("completed", "local")


async def test_call_torn_down_during_prompt_ends_the_prompt(appliance, peers, wavs):
    tel, events, peer, call_id = await connected_call(appliance, peers)
    play = asyncio.create_task(tel.play(call_id, wavs["prompt"]))
    await asyncio.sleep(0.3)
    peer.send(cmd="hangup")
    assert await asyncio.wait_for(play, 10) == "hangup"
    assert await drain(tel.audio(call_id)) is not None
    with pytest.raises(Exception, match="no active call"):
        await tel.play(call_id, wavs["short"])


async def test_dtmf_and_signal_header_updates_mid_call(appliance, peers):
    tel, events, peer, call_id = await connected_call(
        appliance, peers, headers={"X-Signal-Strength": "-97"}
    )
    peer.send(cmd="dtmf", id=1, digits="12#")
    peer.send(cmd="info", id=1, headers={"X-Signal-Strength": "-105"})
    info = await events.wait(SipHeaderValue, where=lambda e: e.message == "INFO")
    assert (info.call_id, info.value) == (call_id, "-105")
    peer.send(cmd="reinvite", id=1, headers={"X-Signal-Strength": "-121"})
    re_invite = await events.wait(SipHeaderValue, where=lambda e: e.value == "-121")
    assert re_invite.message == "INVITE"
    await events.wait(DtmfReceived, where=lambda e: e.digit == "#")
    assert [d.digit for d in events.of(DtmfReceived, call_id)] == ["1", "2", "#"]
    values = [h.value for h in events.of(SipHeaderValue, call_id)]
    assert values == ["-97", "-105", "-121"]
    # the call survived the INFO and re-INVITE
    await tel.hangup(call_id, "end of test")
    await events.wait(CallStateChanged, where=lambda e: e.state == "disconnected")


@pytest.mark.slow
async def test_concurrent_calls_keep_their_audio_intact(appliance, peers, sip_config, wavs):
    n = 3
    tel, events = await appliance(sip_config(max_concurrent_calls=n))
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers("1002")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    for _ in range(n):
        peer.send(cmd="call", to=APPLIANCE_EXT, play=str(wavs["speech"]), play_delay=0.3)
    calls = []
    for _ in range(n):
        ev = await events.wait(
            IncomingCall, where=lambda e, seen=tuple(calls): e.call_id not in seen
        )
        calls.append(ev.call_id)
    drains = [asyncio.create_task(drain(tel.audio(c))) for c in calls]
    for _ in range(n):
        await peer.wait("playing")
    await asyncio.sleep(7.0)  # the speech lasts ~6.2 s
    peer.send(cmd="hangup")
    await assert_each_call_heard(tel, calls, drains, wavs["speech"])
