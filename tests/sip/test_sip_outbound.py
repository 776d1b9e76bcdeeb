"""Outbound calls and their outcomes, blind transfer (REFER), and SIP MESSAGE."""

from __future__ import annotations

import asyncio

import pytest

from edgecall.telephony.events import (
    CallStateChanged,
    IncomingCall,
    MessageResult,
    QualitySample,
    RegistrationChanged,
    TransferResult,
)
from edgecall.telephony.service import TelephonyError
from tests.sip.sip_helpers import APPLIANCE_EXT


async def ready(appliance, peers, cfg=None, **peer_modes):
    tel, events = await appliance(cfg)
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    started = {}
    for user, mode in peer_modes.items():
        p = peers(user.removeprefix("u"), mode=mode)
        await p.wait("reg", where=lambda e: e["code"] == 200)
        started[user.removeprefix("u")] = p
    return tel, events, started


def ended(call_id):
    return lambda e: e.call_id == call_id and e.state == "disconnected"


async def test_outbound_answered_then_hung_up_with_reason(appliance, peers):
    tel, events, p = await ready(appliance, peers, u1002="answer")
    call_id = await tel.originate("1002")
    incoming = await p["1002"].wait("incoming")
    assert incoming["call_id"] == call_id
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "confirmed"
    )
    await tel.hangup(call_id, "poor signal")
    ev = await events.wait(CallStateChanged, where=ended(call_id))
    assert (ev.direction, ev.outcome, ev.ended_by) == ("outbound", "completed", "local")


async def test_outbound_busy_and_unknown_number(appliance, peers):
    tel, events, _ = await ready(appliance, peers, u1002="busy")
    busy = await tel.originate("1002")
    assert (await events.wait(CallStateChanged, where=ended(busy))).outcome == "busy"
    unknown = await tel.originate("1009")
    ev = await events.wait(CallStateChanged, where=ended(unknown))
    assert (ev.outcome, ev.code) == ("failed", 404)
    with pytest.raises(TelephonyError, match="not a dialable number"):
        await tel.originate("12; rm -rf")


@pytest.mark.slow
async def test_outbound_not_answered_within_ring_timeout(appliance, peers, sip_config):
    tel, events, p = await ready(appliance, peers, sip_config(ring_timeout_s=5), u1002="ignore")
    call_id = await tel.originate("1002")
    await p["1002"].wait("incoming")
    ev = await events.wait(CallStateChanged, timeout=15, where=ended(call_id))
    assert ev.outcome == "no_answer"


async def test_blind_transfer_reaches_the_target(appliance, peers):
    tel, events, p = await ready(appliance, peers, u1002="answer", u1003="answer")
    p["1002"].send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    await events.wait(CallStateChanged, where=lambda e: e.state == "confirmed")
    result = await tel.transfer(incoming.call_id, "1003")
    assert result.ok and result.code == 200
    assert (await p["1002"].wait("transfer_request"))["to"].lstrip("<").startswith("sip:1003@")
    at_target = await p["1003"].wait("incoming")
    assert "1002" in at_target["remote"]
    ev = await events.wait(CallStateChanged, where=ended(incoming.call_id))
    assert ev.outcome == "transferred"
    assert events.of(TransferResult) == [result]


async def test_transfer_to_busy_target_keeps_the_call(appliance, peers):
    tel, events, p = await ready(appliance, peers, u1002="answer", u1003="busy")
    p["1002"].send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    await events.wait(CallStateChanged, where=lambda e: e.state == "confirmed")
    result = await tel.transfer(incoming.call_id, "1003")
    assert not result.ok and result.code == 486
    assert incoming.call_id in tel.active_calls()
    await tel.hangup(incoming.call_id)
    assert (
        await events.wait(CallStateChanged, where=ended(incoming.call_id))
    ).outcome == "completed"


async def test_sip_message_is_delivered(appliance, peers):
    tel, events, p = await ready(appliance, peers, u1002="answer")
    text = "信号较差，我们稍后回电 / poor signal, we will call back"
    result = await tel.send_message("1002", text)
    assert result.ok, result
    got = await p["1002"].wait("message")
    assert got["body"] == text and "1001" in got["frm"]
    missing = await tel.send_message("1009", "nobody")
    assert not missing.ok and missing.code == 404
    assert [r.code for r in events.of(MessageResult)] == [result.code, 404]


async def test_codec_preference_and_rtp_port_range(appliance, peers, sip_config):
    cfg = sip_config(codecs=["PCMA", "PCMU"], rtp_port_min=47000, rtp_port_max=47019)
    tel, events, p = await ready(appliance, peers, cfg, u1002="answer")
    call_id = await tel.originate("1002")  # the peer offers G722 first, but we do not
    media = await p["1002"].wait("media")
    assert media["codec"] == "PCMA"
    port = int(media["remote_rtp"].rsplit(":", 1)[1])
    assert 47000 <= port <= 47019
    sample = await events.wait(QualitySample, where=lambda q: q.call_id == call_id)
    assert sample.codec == "PCMA"
    frame = await tel.audio(call_id).get()
    assert len(frame) == 640  # still 16 kHz 20 ms frames from a narrowband codec


@pytest.mark.slow
async def test_a_finished_call_never_disturbs_the_next_call_in_its_slot(
    appliance, peers, sip_config
):
    """pjsua reuses call slots; an old Call object freed late would hang up the new call."""
    tel, events, p = await ready(
        appliance, peers, sip_config(ring_timeout_s=5), u1002="busy", u1003="answer"
    )
    for _ in range(4):  # pjsua hands out slots round-robin: use all four once
        busy = await tel.originate("1002")  # ends at once; its ring timer lives 5 s
        await events.wait(CallStateChanged, where=ended(busy))
    p["1003"].send(cmd="call", to=APPLIANCE_EXT)  # takes the first slot again
    incoming = await events.wait(IncomingCall)
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == incoming.call_id and e.state == "confirmed"
    )
    frames = tel.audio(incoming.call_id)
    await asyncio.sleep(6)  # past the old call's ring timeout
    assert incoming.call_id in tel.active_calls()
    while not frames.empty():
        frames.get_nowait()
    assert await asyncio.wait_for(frames.get(), 2) is not None
    assert not [
        e for e in events.of(CallStateChanged, incoming.call_id) if e.state == "disconnected"
    ]
