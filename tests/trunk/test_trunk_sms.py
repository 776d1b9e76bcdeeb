"""SMS: byte-exact text mode and UCS2 against the simulated modem, and every route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgecall.config.trunk import ModemConfig, SmsConfig, TrunkConfig
from edgecall.messages import Identity
from edgecall.trunk.modem import Modem
from edgecall.trunk.sms import (
    SMS_REQUEST_SCHEMA,
    ModemSmsRoute,
    MqttSmsRoute,
    SipMessageSmsRoute,
    SmsSender,
    build_route,
)
from edgecall.trunk.sms_text import choose_charset, split_parts, ucs2_hex, units
from tests.harness.fake_modem import FakeModem

SETUP = b"ATE0\rAT+CMEE=1\r"  # what Modem.open() sends first


def _sender(modem: Modem, events: list[dict[str, Any]], timeout_s: float = 5.0) -> SmsSender:
    return SmsSender(
        ModemSmsRoute(modem, timeout_s=timeout_s), timeout_s=timeout_s, on_event=events.append
    )


async def test_gsm_text_mode_byte_exact(fake_modem: FakeModem, modem: Modem) -> None:
    events: list[dict[str, Any]] = []
    result = await _sender(modem, events).send("+86 138 0000 0000", "Network problem, sorry.")
    assert result.ok and result.refs == [1]
    assert bytes(fake_modem.received) == SETUP + (
        b'AT+CMGF=1\rAT+CSCS="GSM"\rAT+CSMP=17,167,0,0\r'
        b'AT+CMGS="+8613800000000",145\rNetwork problem, sorry.\x1a'
    )
    assert [e["type"] for e in events] == ["sms_attempt", "sms_result"]
    assert events[1] | {"attempt_id": None} == {
        "type": "sms_result",
        "attempt_id": None,
        "route": "modem",
        "to": "+86 138 0000 0000",
        "call_id": None,
        "ok": True,
        "parts": 1,
        "refs": [1],
        "error": None,
    }


async def test_ucs2_chinese_byte_exact(fake_modem: FakeModem, modem: Modem) -> None:
    result = await _sender(modem, []).send("13800000000", "您好")
    assert result.ok
    number_hex = ucs2_hex("13800000000")
    assert number_hex == "003100330038" + "0030" * 8
    assert bytes(fake_modem.received) == SETUP + (
        b'AT+CMGF=1\rAT+CSCS="UCS2"\rAT+CSMP=17,167,0,8\r'
        b'AT+CMGS="' + number_hex.encode() + b'",129\r60A8597D\x1a'
    )


async def test_echo_on_does_not_confuse_the_submit() -> None:
    with FakeModem() as fake:
        modem = Modem(ModemConfig(device=fake.path, command_timeout_s=2.0))
        await modem.open()
        fake.echo = True  # a module that ignores ATE0 keeps echoing the body too
        assert (await _sender(modem, []).send("+4915112345678", "OK")).refs == [1]
        assert fake.sms == [('AT+CMGS="+4915112345678",145', b"OK")]
        modem.close()


async def test_long_messages_go_as_numbered_parts(fake_modem: FakeModem, modem: Modem) -> None:
    text = "Sorry, the line is too poor to continue our call. " * 4  # 204 chars
    result = await _sender(modem, []).send("+8613800000000", text)
    assert result.ok and result.refs == [1, 2]
    bodies = [body.decode() for _, body in fake_modem.sms]
    assert [b[:6] for b in bodies] == ["(1/2) ", "(2/2) "]
    assert all(len(b) <= 153 for b in bodies)
    assert " ".join(b[6:] for b in bodies) == text.strip()

    chinese = "您好，" * 40  # 120 UCS2 units
    result = await _sender(modem, []).send("+8613800000000", chinese)
    assert result.refs == [3, 4]
    parts = [bytes.fromhex(body.decode()).decode("utf-16-be") for _, body in fake_modem.sms[2:]]
    assert all(units(p, "UCS2") <= 67 for p in parts)
    assert "".join(p[6:] for p in parts) == chinese


def test_split_edges() -> None:
    assert split_parts("a" * 160, "GSM") == ["a" * 160]
    assert len(split_parts("a" * 161, "GSM")) == 2
    assert split_parts("好" * 70, "UCS2") == ["好" * 70]
    assert len(split_parts("好" * 71, "UCS2")) == 2
    emoji = split_parts("😀" * 40, "UCS2")  # 80 units; never half a surrogate pair
    assert all(units(p, "UCS2") <= 67 for p in emoji) and "".join(p[6:] for p in emoji) == "😀" * 40
    assert choose_charset("Price: 5 EUR?") == "GSM"
    assert choose_charset("user@example") == "UCS2"  # '@' is 0x00 in GSM 03.38


async def test_refused_sms_is_a_failed_result_not_an_exception(
    fake_modem: FakeModem, modem: Modem
) -> None:
    fake_modem.cmgs_result = "+CMS ERROR: 500"
    events: list[dict[str, Any]] = []
    result = await _sender(modem, events).send("+8613800000000", "hello")
    assert not result.ok and "+CMS ERROR: 500" in result.error
    assert events[-1]["ok"] is False and events[-1]["error"] == result.error


@pytest.mark.parametrize("how", ["no prompt", "no result after the body"])
async def test_silent_modem_never_blocks_the_hang_up(
    fake_modem: FakeModem, modem: Modem, how: str
) -> None:
    if how == "no prompt":
        fake_modem.go_silent("AT+CMGS")
    else:
        fake_modem.cmgs_silent = True
    events: list[dict[str, Any]] = []
    # The sender's deadline (1 s) cuts the attempt short, whatever the route waits for.
    sender = SmsSender(ModemSmsRoute(modem, timeout_s=30), timeout_s=1.0, on_event=events.append)
    task = sender.send_in_background("+8613800000000", "hello", call_id="c1")
    assert not task.done()  # the caller goes on with the hang-up at once
    result = await task
    assert not result.ok and "no result in 1 s" in result.error
    assert [e["call_id"] for e in events] == ["c1", "c1"]
    fake_modem.speak_again()
    fake_modem.cmgs_silent = False
    assert (await _sender(modem, []).send("+8613800000000", "again")).ok  # ESC left text entry
    assert fake_modem.sms[-1] == ('AT+CMGS="+8613800000000",145', b"again")


async def test_unplugged_modem_and_bad_number_fail_cleanly(
    fake_modem: FakeModem, modem: Modem
) -> None:
    sender = _sender(modem, [])
    bad = await sender.send("call me maybe", "hello")
    assert not bad.ok and "not a phone number" in bad.error
    fake_modem.unplug()
    await asyncio.sleep(0.05)
    result = await sender.send("+8613800000000", "hello")
    assert not result.ok and result.error


async def test_mqtt_route_publishes_a_request() -> None:
    published: list[dict[str, Any]] = []

    async def publish(message: dict[str, Any]) -> None:
        published.append(message)

    route = MqttSmsRoute(publish, Identity("site-1", "box-1"))
    result = await SmsSender(route, timeout_s=1).send("+8613800000000", "您好", call_id="c9")
    assert result.ok and result.route == "mqtt"
    (msg,) = published
    assert msg["schema"] == SMS_REQUEST_SCHEMA and msg["call_id"] == "c9"
    assert (msg["to"], msg["text"], msg["reason"]) == ("+8613800000000", "您好", "poor_signal")

    async def broken(message: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    failed = await SmsSender(MqttSmsRoute(broken, Identity("s", "a")), timeout_s=1).send(
        "+8613800000000", "x"
    )
    assert not failed.ok and "broker down" in failed.error


class _SipSender:
    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.sent: list[tuple[str, str]] = []

    async def send_message(self, uri: str, text: str) -> bool:
        self.sent.append((uri, text))
        return self.ok


async def test_sip_message_route() -> None:
    sip = _SipSender(ok=True)
    route = SipMessageSmsRoute(sip, "sip:{number}@trunk.local")
    assert (await SmsSender(route, timeout_s=1).send("+8613800000000", "hi")).ok
    assert sip.sent == [("sip:+8613800000000@trunk.local", "hi")]
    refused = SipMessageSmsRoute(_SipSender(ok=False), "sip:{number}@trunk.local")
    assert not (await SmsSender(refused, timeout_s=1).send("+8613800000000", "hi")).ok


async def test_route_none_and_factory() -> None:
    assert not (await SmsSender(None, timeout_s=1).send("+8613800000000", "hi")).ok
    none_cfg = TrunkConfig(sms=SmsConfig(route="none"))
    assert build_route(none_cfg) is None
    with pytest.raises(ValueError, match="needs a publisher"):
        build_route(TrunkConfig())
    sip_cfg = TrunkConfig(sms=SmsConfig(route="sip_message", sip_message_uri="sip:{number}@t"))
    assert isinstance(build_route(sip_cfg, sip_sender=_SipSender(True)), SipMessageSmsRoute)
