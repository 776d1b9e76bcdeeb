"""Per-second call quality: source order, fallback with reasons, the modem trace path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from edgecall.config.rules import PoorSignalRuleConfig
from edgecall.config.trunk import ModemConfig, RtpMappingConfig, TrunkConfig
from edgecall.rules.poor_signal import first_trigger
from edgecall.trunk.modem import Modem, SignalPoller
from edgecall.trunk.quality import CallQuality, QualityCombiner
from edgecall.trunk.rtp_mapping import RtpStatsError, rtp_stats_to_dbm, rtp_to_dbm
from edgecall.trunk.signal import SignalReading
from tests.harness.fake_modem import FakeModem, SignalState

MODEM = ModemConfig(device="/dev/null")
ALL = TrunkConfig(sources=["modem", "sip_header", "rtp"], modem=MODEM)
CLEAN = {"loss_pct": 0.0, "jitter_ms": 0.0}


def test_rtp_mapping_defaults() -> None:
    cfg = RtpMappingConfig()
    assert rtp_to_dbm(0, 0, 0, cfg) == -70
    assert rtp_to_dbm(20, 0, 0, cfg) == -120  # 20 % loss alone reaches the threshold
    assert rtp_to_dbm(10, 20, 2, cfg) == pytest.approx(-70 - 25 - 6 - 3)
    assert rtp_to_dbm(100, 500, 100, cfg) == -130  # clamped at floor_dbm
    assert rtp_stats_to_dbm({"loss_pct": 4, "jitter_ms": 10}, cfg) == -83
    custom = RtpMappingConfig(best_dbm=-60, dbm_per_loss_pct=1.0)
    assert rtp_to_dbm(30, 0, 0, custom) == -90


@pytest.mark.parametrize(
    "stats",
    [
        {"loss_pct": -1, "jitter_ms": 0},
        {"loss_pct": 101, "jitter_ms": 0},
        {"loss_pct": float("nan"), "jitter_ms": 0},
        {"loss_pct": "x", "jitter_ms": 0},
        {"jitter_ms": 3},
    ],
)
def test_rtp_mapping_rejects_bad_stats(stats: dict[str, object]) -> None:
    with pytest.raises(RtpStatsError):
        rtp_stats_to_dbm(stats, RtpMappingConfig())


def test_first_configured_source_with_a_fresh_value_wins() -> None:
    q = QualityCombiner(ALL)
    q.push_rtp(CLEAN, 0.0)
    q.push_sip_header("-97", 0.0)
    q.push_modem(SignalReading(-101.0), 0.0)
    first = q.sample(1.0)
    assert first.sample == {"t": 1.0, "dbm": -101.0, "source": "modem"} and first.note is None

    q.push_modem(SignalReading(None, reason="rssi 99 (not known)"), 1.5)
    tick = q.sample(2.0)
    assert tick.sample == {"t": 2.0, "dbm": -97.0, "source": "sip_header"}
    assert tick.note == {
        "t": 2.0,
        "type": "quality_source_changed",
        "from": "modem",
        "to": "sip_header",
        "reason": "modem: rssi 99 (not known)",
    }

    q.push_sip_header("-300", 2.5)  # out of range
    tick = q.sample(3.0)
    assert tick.sample["source"] == "rtp" and tick.sample["dbm"] == -70
    assert "sip_header: -300 dBm outside -150..-20" in tick.note["reason"]

    tick = q.sample(10.0)  # rtp not refreshed for 10 s: nothing left
    assert tick.sample == {"t": 10.0, "dbm": None, "source": None}
    assert "rtp: no value for 10.0 s" in tick.note["reason"]

    q.push_modem(SignalReading(-90.0), 10.2)
    tick = q.sample(11.0)
    assert tick.sample["source"] == "modem"
    assert tick.note["reason"] == "modem has a usable value again"
    assert q.sample(12.0).note is None  # no change, no note


def test_order_is_the_configured_one() -> None:
    q = QualityCombiner(TrunkConfig(sources=["rtp", "modem"], modem=MODEM))
    q.push_modem(SignalReading(-80.0), 0)
    q.push_rtp(CLEAN, 0)
    assert q.sample(0.5).sample["source"] == "rtp"


def test_first_sample_from_a_fallback_says_why() -> None:
    q = QualityCombiner(ALL, start_t=100.0)
    q.push_rtp({"loss_pct": 40, "jitter_ms": 0}, 100.2)
    tick = q.sample(101.0)
    assert tick.sample == {"t": 1.0, "dbm": -130.0, "source": "rtp"}
    assert tick.note["from"] is None
    assert tick.note["reason"] == "modem: no value yet; sip_header: no value yet"


def test_sip_header_name_and_pattern_from_config() -> None:
    cfg = TrunkConfig.model_validate(
        {
            "sources": ["sip_header"],
            "sip_header": {"header": "X-Caller-Rssi", "pattern": r"rssi=(-?\d+)dBm"},
        }
    )
    q = QualityCombiner(cfg)
    q.push_sip_headers({"From": "<sip:1@x>", "x-caller-rssi": "cell=7;rssi=-104dBm"}, 0)
    assert q.sample(1).sample["dbm"] == -104
    q.push_sip_headers({"X-Caller-Rssi": "garbage"}, 2)
    tick = q.sample(3)
    assert tick.sample["dbm"] is None and "does not match" in tick.note["reason"]
    q.push_sip_headers({"X-Other": "-50"}, 4)  # not our header: the last value stays
    assert q.sample(5).sample["dbm"] is None


async def _drive(modem: Modem, combiner: QualityCombiner, seconds: int) -> list[float | None]:
    """One modem poll and one sample per (simulated) second."""
    series = []
    for second in range(seconds):
        combiner.push_modem(await modem.read_signal(), second + 0.2)
        series.append(combiner.sample(second + 1.0).sample["dbm"])
    return series


TRACE_DBM = [-100, -125, -125, -110, -125, -90, -95]


@pytest.mark.parametrize("vendor", ["generic", "quectel"])
async def test_modem_trace_fires_the_3_of_5_window(vendor: str) -> None:
    trace = [SignalState.lte(d) for d in TRACE_DBM]
    advance = "AT+QCSQ" if vendor == "quectel" else "AT+CESQ"
    with FakeModem(vendor=vendor, trace=trace, advance_on=advance) as fake:
        modem = Modem(ModemConfig(device=fake.path, vendor=vendor, command_timeout_s=2.0))
        await modem.open()
        combiner = QualityCombiner(TrunkConfig(sources=["modem", "rtp"], modem=MODEM))
        series = await _drive(modem, combiner, len(TRACE_DBM))
        modem.close()
    assert series == [-100.0, -125.0, -125.0, -110.0, -125.0, -90.0, -95.0]
    assert first_trigger(series, PoorSignalRuleConfig()) == 4  # third poor sample of five


async def test_csq_only_modem_cannot_go_below_minus_113() -> None:
    """A 2G-only module's +CSQ floor (-113 dBm) never crosses the -120 dBm default."""
    trace = [SignalState.gsm_csq(i) for i in (0, 0, 1, 0, 0)]
    with FakeModem(cesq_supported=False, trace=trace, advance_on="AT+CSQ") as fake:
        modem = Modem(ModemConfig(device=fake.path, command_timeout_s=2.0))
        await modem.open()
        combiner = QualityCombiner(TrunkConfig(sources=["modem"], modem=MODEM))
        series = await _drive(modem, combiner, 5)
        assert fake.commands.count("AT+CESQ") == 1  # ERROR once: not asked again
        modem.close()
    assert series == [-113.0, -113.0, -111.0, -113.0, -113.0]
    assert first_trigger(series, PoorSignalRuleConfig()) is None


async def test_silent_or_unknown_modem_falls_back_to_rtp(
    fake_modem: FakeModem, modem: Modem
) -> None:
    combiner = QualityCombiner(TrunkConfig(sources=["modem", "rtp"], modem=MODEM))
    fake_modem.signal = SignalState.lte(-100)
    notes = []
    for second, state in enumerate(["ok", "silent", "unknown", "ok"]):
        fake_modem.speak_again()
        if state == "silent":
            fake_modem.go_silent()
        fake_modem.signal = SignalState.unknown() if state == "unknown" else SignalState.lte(-100)
        combiner.push_rtp({"loss_pct": 8, "jitter_ms": 0}, second)
        combiner.push_modem(await modem.read_signal(), second + 0.2)
        tick = combiner.sample(second + 1.0)
        notes.append(tick.note)
        assert tick.sample["source"] == ("modem" if state == "ok" else "rtp")
    assert notes[0] is None
    assert notes[1]["to"] == "rtp" and "timeout" in notes[1]["reason"]
    assert notes[2] is None  # still rtp, now because the modem reports 99/255
    assert combiner.sample(4.0).note is None
    assert notes[3]["to"] == "modem"


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_modem_unplugged_mid_call_falls_back_without_a_crash() -> None:
    cfg = TrunkConfig(
        sources=["modem", "rtp"], modem=MODEM, sample_interval_s=0.05, stale_after_s=1.0
    )
    with FakeModem(signal=SignalState.lte(-95)) as fake:
        modem = Modem(ModemConfig(device=fake.path, command_timeout_s=2.0))
        await modem.open()
        poller = SignalPoller(modem, interval_s=0.05)
        call = CallQuality(cfg, poller=poller)

        async def rtp_feed() -> None:
            loop = asyncio.get_running_loop()
            while True:
                call.combiner.push_rtp({"loss_pct": 30, "jitter_ms": 5}, loop.time())
                await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(c) for c in (poller.run(), call.run(), rtp_feed())]
        await _until(lambda: sum(s["source"] == "modem" for s in call.samples) >= 3)
        fake.unplug()
        await _until(lambda: call.samples[-1]["source"] == "rtp")
        await _until(lambda: sum(s["source"] == "rtp" for s in call.samples) >= 3)
        assert all(not t.done() for t in tasks)  # nothing crashed
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        modem.close()
    sources = [s["source"] for s in call.samples]
    switch = sources.index("rtp")
    assert set(sources[:switch]) == {"modem"} and set(sources[switch:]) == {"rtp"}
    assert call.series[switch:][-1] == -130.0  # 30 % loss, 5 ms jitter, clamped
    (note,) = call.notes
    assert (note["from"], note["to"]) == ("modem", "rtp")
    assert "modem unavailable" in note["reason"]


async def test_modem_over_tcp_comes_back_after_the_link_drops() -> None:
    with FakeModem(transport="tcp", signal=SignalState.lte(-99)) as fake:
        cfg = ModemConfig(
            tcp=f"127.0.0.1:{fake.port}", command_timeout_s=2.0, reconnect_interval_s=0.1
        )
        modem = Modem(cfg)
        await modem.open()
        assert (await modem.read_signal()).dbm == -99.0
        fake.drop_link()
        await _until(lambda: not modem.channel.is_open)
        down = await modem.read_signal()
        assert down.dbm is None and "modem unavailable" in down.reason
        await asyncio.sleep(0.15)  # past reconnect_interval_s
        assert (await modem.read_signal()).dbm == -99.0
        assert fake.commands.count("ATE0") == 2  # set up again after reconnecting
        modem.close()
