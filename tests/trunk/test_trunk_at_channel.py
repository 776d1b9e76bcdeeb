"""The AT channel against the simulated modem: results, errors, silence, noise, URCs."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecall.trunk.at import (
    AtChannel,
    AtCommandError,
    AtTimeout,
    LineSplitter,
    ModemUnavailable,
    Prompt,
    reply_prefix,
)
from tests.harness.fake_modem import FakeModem, SignalState

STREAM = b'\r\n+CSQ: 20,99\r\n\x00\xff\r\n+CMTI: "SM",3\r\n\r\nOK\r\n\r\n> '


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=8))
def test_splitter_is_indifferent_to_chunking(cuts: list[int]) -> None:
    splitter = LineSplitter()
    out: list[object] = []
    last = 0
    for cut in sorted(set(cuts)) + [len(STREAM)]:
        if cut == len(STREAM):
            splitter.expect_prompt = True  # the prompt is awaited once OK has arrived
        out += splitter.feed(STREAM[last:cut])
        last = cut
    out += splitter.feed(b"")
    assert out == ["+CSQ: 20,99", '+CMTI: "SM",3', "OK", Prompt()]


def test_reply_prefix() -> None:
    assert reply_prefix("AT+CSQ") == "+CSQ:"
    assert reply_prefix('AT+CMGS="123",129') == "+CMGS:"
    assert reply_prefix("at^sysinfo") == "^SYSINFO:"
    assert reply_prefix("ATE0") is None


async def _channel(fake: FakeModem, urcs: list[str] | None = None) -> AtChannel:
    channel = AtChannel(timeout_s=2.0, on_urc=urcs.append if urcs is not None else None)
    if fake.transport == "pty":
        await channel.open_serial(fake.path)
    else:
        await channel.open_tcp("127.0.0.1", fake.port)
    return channel


@pytest.mark.parametrize("echo", [True, False])
async def test_reply_with_and_without_echo(echo: bool) -> None:
    with FakeModem(echo=echo, signal=SignalState.gsm_csq(17)) as fake:
        channel = await _channel(fake)
        assert await channel.command("AT+CSQ") == ["+CSQ: 17,0"]
        assert channel.noise_lines == 0
        channel.close()


async def test_error_results_raise_with_their_code(fake_modem: FakeModem) -> None:
    channel = await _channel(fake_modem)
    fake_modem.fail_next("AT+CSQ", "+CME ERROR: 10")
    with pytest.raises(AtCommandError) as err:
        await channel.command("AT+CSQ")
    assert (err.value.kind, err.value.code) == ("+CME ERROR", "10")
    with pytest.raises(AtCommandError) as err:
        await channel.command("AT+NOSUCH")
    assert err.value.kind == "ERROR"
    assert await channel.command("AT") == []  # the port is still in step
    channel.close()


async def test_silence_times_out_and_the_next_command_works(fake_modem: FakeModem) -> None:
    channel = await _channel(fake_modem)
    fake_modem.go_silent("AT+CSQ", count=1)
    with pytest.raises(AtTimeout):
        await channel.command("AT+CSQ", timeout_s=0.2)
    assert await channel.command("AT+CSQ") == ["+CSQ: 99,99"]
    channel.close()


async def test_garbage_and_urcs_interleaved_with_replies() -> None:
    urcs: list[str] = []
    with FakeModem(signal=SignalState.lte(-100)) as fake:
        fake.urcs_in_reply = [b"\r\n^RSSI: 12\r\n", b"\xfe\x00\x81~~\r\n", b"\r\nRING\r\n"]
        channel = await _channel(fake, urcs)
        fake.inject(b'\x00\xff\xfe\r\n+CMTI: "SM",3\r\n\x13\x11')
        assert await channel.command("AT+CESQ") == ["+CESQ: 99,99,255,255,20,41"]
        fake.inject(b'\r\n+CMT: "+8613800000000",,"26/11/21,18:00:00+32"\r\nhello\r\n')
        assert await channel.command("AT+CSQ") == ["+CSQ: 16,99"]
        assert urcs == [
            '+CMTI: "SM",3',
            "^RSSI: 12",
            "RING",
            '+CMT: "+8613800000000",,"26/11/21,18:00:00+32"\nhello',
            "^RSSI: 12",
            "RING",
        ]
        assert channel.noise_lines == 2  # the '~~' garbage line after each reply's info
        channel.close()


async def test_commands_are_serialised(fake_modem: FakeModem) -> None:
    channel = await _channel(fake_modem)
    replies = await asyncio.gather(*(channel.command("AT+CSQ") for _ in range(5)))
    assert replies == [["+CSQ: 99,99"]] * 5
    channel.close()


async def test_prompt_error_instead_of_prompt(fake_modem: FakeModem) -> None:
    channel = await _channel(fake_modem)
    with pytest.raises(AtCommandError, match=r"\+CMS ERROR: 302"):  # text mode not set
        await channel.command_with_prompt('AT+CMGS="123",129', b"hi")
    assert fake_modem.sms == []
    channel.close()


async def test_unplugged_port_fails_fast_and_says_so(fake_modem: FakeModem) -> None:
    channel = await _channel(fake_modem)
    fake_modem.unplug()
    with pytest.raises(ModemUnavailable):
        for _ in range(3):  # the loss may be noticed on write or on read
            await channel.command("AT")
            await asyncio.sleep(0.05)
    assert not channel.is_open
    with pytest.raises(ModemUnavailable):
        await channel.command("AT")


async def test_tcp_variant() -> None:
    with FakeModem(transport="tcp", signal=SignalState.gsm_csq(31)) as fake:
        channel = await _channel(fake)
        assert await channel.command("AT+CSQ") == ["+CSQ: 31,0"]
        channel.close()


async def test_opening_a_missing_device_is_a_clear_error() -> None:
    with pytest.raises(ModemUnavailable, match="cannot open /dev/nonexistent-modem"):
        await AtChannel().open_serial("/dev/nonexistent-modem")
