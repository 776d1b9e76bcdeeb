"""Registration with digest auth against a real Kamailio, and its recovery."""

from __future__ import annotations

import pytest

from edgecall.telephony.events import CallStateChanged, IncomingCall, RegistrationChanged
from tests.sip.sip_helpers import APPLIANCE_EXT


async def test_registers_with_digest_auth_and_unregisters_on_stop(appliance, kamailio, peers):
    tel, events = await appliance()
    ev = await events.wait(RegistrationChanged, where=lambda e: e.registered)
    assert ev.code == 200 and ev.expires_s > 0
    assert tel.registered and tel.running
    # the registrar now knows where 1001 is: a peer's call reaches the appliance
    peer = peers("1002", mode="answer")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    incoming = await events.wait(IncomingCall)
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == incoming.call_id and e.state == "confirmed"
    )
    await tel.stop()
    assert not tel.running
    # clean shutdown removed the binding: the same call now gets 404 from the registrar
    peer.send(cmd="call", to=APPLIANCE_EXT)
    state = await peer.wait("state", where=lambda e: e["state"] == "DISCONNECTED" and e["id"] == 2)
    assert state["code"] == 404


async def test_registers_and_takes_calls_over_tcp(appliance, sip_config, peers):
    tel, events = await appliance(sip_config(transport="tcp"))
    ev = await events.wait(RegistrationChanged, where=lambda e: e.registered)
    assert ev.code == 200
    peer = peers("1002", mode="answer")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)  # the peer uses UDP; Kamailio bridges to TCP
    incoming = await events.wait(IncomingCall)
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == incoming.call_id and e.state == "confirmed"
    )
    call_id = await tel.originate("1002")
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "confirmed"
    )


@pytest.mark.slow
async def test_reregisters_after_registrar_restart(appliance, kamailio, sip_config, peers):
    tel, events = await appliance(sip_config(register_expiry_s=10))
    await events.wait(RegistrationChanged, where=lambda e: e.registered)
    kamailio.restart()  # forgets every binding, like a PBX reboot
    mark = events.mark()
    ev = await events.wait(
        RegistrationChanged, timeout=15, after=mark, where=lambda e: e.registered
    )
    assert ev.code == 200
    peer = peers("1002", mode="answer")
    await peer.wait("reg", where=lambda e: e["code"] == 200)
    peer.send(cmd="call", to=APPLIANCE_EXT)
    await events.wait(IncomingCall, after=mark)
