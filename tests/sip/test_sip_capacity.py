"""More calls than the pjsua2-python wheel's 4 per process, with the pjsua2 we build
(third_party/build-pjsua2.sh: PJSUA_MAX_CALLS 64), and the start-up check of that limit."""

from __future__ import annotations

import asyncio

import pytest

from edgecall.telephony import engine
from edgecall.telephony.events import CallStateChanged, IncomingCall, RegistrationChanged
from edgecall.telephony.service import Telephony, TelephonyError
from tests.sip.sip_helpers import APPLIANCE_EXT, assert_each_call_heard, drain


@pytest.mark.slow
async def test_eight_simultaneous_calls_keep_their_audio_and_a_ninth_gets_486(
    appliance, peers, sip_config, wavs
):
    n = 8
    tel, events = await appliance(sip_config(max_concurrent_calls=n))
    # pjsua granted the configured calls plus spare slots: the limit is no longer 4
    assert engine.library_max_calls() == n + engine._SPARE_CALL_SLOTS
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    caller, extra = peers("1002"), peers("1003")
    for p in (caller, extra):
        await p.wait("reg", where=lambda e: e["code"] == 200)
    for _ in range(n):
        caller.send(cmd="call", to=APPLIANCE_EXT, play=str(wavs["speech"]), play_delay=0.3)
    calls: list[str] = []
    for _ in range(n):
        ev = await events.wait(
            IncomingCall, where=lambda e, seen=tuple(calls): e.call_id not in seen
        )
        calls.append(ev.call_id)
    drains = [asyncio.create_task(drain(tel.audio(c))) for c in calls]
    for _ in range(n):
        await caller.wait("state", where=lambda e: e["state"] == "CONFIRMED")
    assert len(tel.active_calls()) == n
    # one more than configured: refused by our own 486 and published
    extra.send(cmd="call", to=APPLIANCE_EXT)
    refused = await extra.wait("state", where=lambda e: e["state"] == "DISCONNECTED")
    assert refused["code"] == 486
    busy = await events.wait(IncomingCall, where=lambda e: e.refused_busy)
    assert "1003" in busy.remote_uri
    for _ in range(n):
        await caller.wait("playing")
    await asyncio.sleep(7.0)  # the speech lasts ~6.2 s
    caller.send(cmd="hangup")
    await assert_each_call_heard(tel, calls, drains, wavs["speech"])
    for call_id in calls:
        ended = await events.wait(
            CallStateChanged,
            where=lambda e, c=call_id: e.call_id == c and e.state == "disconnected",
        )
        assert ended.outcome == "completed"


async def test_more_calls_than_the_linked_library_carries_is_a_start_error(sip_config, monkeypatch):
    """A pjsua2 built with a smaller PJSUA_MAX_CALLS (the PyPI wheel: 4) is refused at
    start, with the reason, instead of silently carrying fewer calls."""
    monkeypatch.setattr(engine, "library_max_calls", lambda: 4)
    with pytest.raises(TelephonyError, match=r"max_concurrent_calls is 8 .* at most 4 calls"):
        await Telephony(sip_config(max_concurrent_calls=8)).start()
