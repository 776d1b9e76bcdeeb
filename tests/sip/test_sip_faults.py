"""Bad input and faults: wrong password, registrar down, garbage datagrams, silent callers,
too many calls, declined callers. Nothing may crash; state and log lines say what happened."""

from __future__ import annotations

import logging
import socket

import pytest

from edgecall.config.sip import AutoAnswerRule
from edgecall.telephony import engine
from edgecall.telephony.events import (
    CallStateChanged,
    IncomingCall,
    QualitySample,
    RegistrationChanged,
)
from edgecall.telephony.service import Telephony, TelephonyError
from tests.sip.sip_helpers import APPLIANCE_EXT


async def test_wrong_password_is_published_and_logged(appliance, sip_config, caplog):
    caplog.set_level(logging.WARNING, logger="edgecall.telephony")
    tel, events = await appliance(sip_config(password="not-the-password"))
    ev = await events.wait(RegistrationChanged)
    assert not ev.registered and ev.code in (401, 403)
    assert not tel.registered
    assert any(
        "registration of 1001" in r.getMessage() and str(ev.code) in r.getMessage()
        for r in caplog.records
    )


async def test_unreadable_password_is_a_clear_error(sip_config, tmp_path):
    from edgecall.config.base import SecretRef

    cfg = sip_config().model_copy(update={"password": SecretRef(file=tmp_path / "missing")})
    with pytest.raises(TelephonyError, match="cannot read secret file"):
        await Telephony(cfg).start()


async def test_registrar_down_at_start_then_up(appliance, kamailio):
    kamailio.stop()
    tel, events = await appliance()
    with pytest.raises(TimeoutError):
        await events.wait(RegistrationChanged, timeout=1.0, where=lambda e: e.registered)
    kamailio.start()
    ev = await events.wait(RegistrationChanged, timeout=15, where=lambda e: e.registered)
    assert ev.code == 200


async def test_malformed_datagrams_do_not_disturb_the_endpoint(appliance, peers):
    tel, events = await appliance()
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    junk = [
        b"\x00" * 64,
        bytes(range(256)) * 4,
        b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n",
        b"SIP/2.0 200 OK\r\nCSeq: x\r\n\r\n",
        b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\n" + b"X-Long: " + b"a" * 60000 + b"\r\n\r\n",
        b"OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort",
        "REGISTER sip:\u00e9\u00e8 SIP/2.0\r\n\r\n".encode(),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for datagram in junk:
            s.sendto(datagram, ("127.0.0.1", tel.local_port))
    peer = peers("1002")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == incoming.call_id and e.state == "confirmed"
    )
    assert tel.registered


async def test_caller_sending_no_rtp_shows_as_total_loss(appliance, peers, caplog):
    caplog.set_level(logging.WARNING, logger="edgecall.telephony")
    tel, events = await appliance()
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers("1002", tx_drop_pct=100)
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    await events.wait(
        QualitySample,
        timeout=10,
        where=lambda q: (
            q.call_id == incoming.call_id
            and q.rx_packets == 0
            and events.of(QualitySample).index(q) >= 1
        ),
    )
    sample = events.of(QualitySample, incoming.call_id)[-1]
    assert sample.loss_pct == 100.0 and sample.mos < 1.5
    assert any("no RTP received" in r.getMessage() for r in caplog.records)
    await tel.hangup(incoming.call_id, "no audio")
    ended = await events.wait(CallStateChanged, where=lambda e: e.state == "disconnected")
    assert ended.outcome == "completed"


async def test_calls_beyond_the_maximum_get_486(appliance, sip_config, peers):
    tel, events = await appliance(sip_config(max_concurrent_calls=1))
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers("1002")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    first = await events.wait(IncomingCall)
    await events.wait(CallStateChanged, where=lambda e: e.state == "confirmed")
    peer.send(cmd="call", to=APPLIANCE_EXT)
    second = await events.wait(IncomingCall, where=lambda e: e.call_id != first.call_id)
    assert second.refused_busy
    refused = await peer.wait(
        "state", where=lambda e: e["id"] == 2 and e["state"] == "DISCONNECTED"
    )
    assert refused["code"] == 486
    ended = await events.wait(
        CallStateChanged, where=lambda e: e.call_id == second.call_id and e.state == "disconnected"
    )
    assert ended.outcome == "busy"
    assert tel.active_calls() == [first.call_id]


async def test_auto_answer_rules_decline_unwanted_callers(appliance, sip_config, peers):
    rules = [AutoAnswerRule(match_from=r"sip:1002@", answer=False), AutoAnswerRule()]
    tel, events = await appliance(sip_config(auto_answer=rules))
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers("1002")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    assert incoming.rule_index == 0
    declined = await peer.wait("state", where=lambda e: e["state"] == "DISCONNECTED")
    assert declined["code"] == 603
    ended = await events.wait(CallStateChanged, where=lambda e: e.state == "disconnected")
    assert ended.outcome == "rejected"


async def test_packet_loss_at_the_caller_shows_in_quality_samples(appliance, peers):
    tel, events = await appliance()
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    peer = peers("1002", tx_drop_pct=20)
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    for _ in range(4):
        await events.wait(QualitySample, after=events.mark())
    samples = events.of(QualitySample, incoming.call_id)[1:]
    mean_loss = sum(s.loss_pct for s in samples) / len(samples)
    assert 8 < mean_loss < 35, [s.loss_pct for s in samples]
    # Each second's MOS follows that second's loss, and 20 % random drops (about 10
    # lost of 50 packets, give or take 3) leave every second well below a clean line.
    figures = [(s.loss_pct, s.mos) for s in samples]
    mean_mos = sum(s.mos for s in samples) / len(samples)
    assert 1.0 < mean_mos < 3.6, figures
    assert all(s.mos < 4.0 for s in samples), figures
    most, least = max(figures), min(figures)
    assert most[0] - least[0] < 2 or most[1] < least[1], figures
    assert all(s.rx_packets > 20 for s in samples)


async def test_a_call_beyond_every_slot_is_refused_by_the_stack_and_published(
    appliance, sip_config, peers, monkeypatch
):
    """With every pjsua call slot taken (here: no spare slots beyond the 4 configured
    calls), the 5th INVITE gets 486 from pjsua itself, before any Account sees it, and is
    still published."""
    monkeypatch.setattr(engine, "_SPARE_CALL_SLOTS", 0)
    tel, events = await appliance(sip_config(max_concurrent_calls=4))
    assert engine.library_max_calls() == 4
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    first, second = peers("1002"), peers("1003")
    for p in (first, second):
        await p.wait("reg", where=lambda e: e["code"] == 200)
    for _ in range(4):
        first.send(cmd="call", to=APPLIANCE_EXT)
    for _ in range(4):
        await first.wait("state", where=lambda e: e["state"] == "CONFIRMED")
    second.send(cmd="call", to=APPLIANCE_EXT)
    refused = await second.wait("state", where=lambda e: e["state"] == "DISCONNECTED")
    assert refused["code"] == 486
    ev = await events.wait(IncomingCall, where=lambda e: e.refused_busy)
    assert "1003" in ev.remote_uri and ev.call_id == refused["call_id"]
    ended = await events.wait(CallStateChanged, where=lambda e: e.call_id == ev.call_id)
    assert (ended.state, ended.outcome) == ("disconnected", "busy")
    assert len(tel.active_calls()) == 4


async def test_sip_port_in_use_is_a_clear_error_and_leaves_no_stack_behind(appliance, sip_config):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        cfg = sip_config(local_port=busy.getsockname()[1])
        with pytest.raises(TelephonyError, match="cannot start SIP stack"):
            await Telephony(cfg).start()
    tel, events = await appliance()  # the failed start destroyed its endpoint
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
