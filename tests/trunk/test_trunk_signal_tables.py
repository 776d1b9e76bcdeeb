"""AT+CSQ / AT+CESQ / AT+QCSQ to dBm at the edges of the TS 27.007 tables."""

from __future__ import annotations

import pytest

from edgecall.trunk.signal import (
    SignalParseError,
    cesq_ecno_db,
    cesq_rsrq_db,
    cesq_to_dbm,
    csq_rssi_to_dbm,
    parse_cesq,
    parse_csq,
    parse_qcsq,
)


@pytest.mark.parametrize(
    ("rssi", "dbm"),
    [(0, -113), (1, -111), (2, -109), (15, -83), (30, -53), (31, -51), (99, None)],
)
def test_csq_table(rssi: int, dbm: int | None) -> None:
    assert csq_rssi_to_dbm(rssi) == dbm


@pytest.mark.parametrize("rssi", [-1, 32, 98, 100])
def test_csq_out_of_range_is_an_error(rssi: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        csq_rssi_to_dbm(rssi)


@pytest.mark.parametrize(
    ("metric", "value", "dbm"),
    [
        ("rsrp", 0, -141),
        ("rsrp", 1, -140),
        ("rsrp", 96, -45),
        ("rsrp", 97, -44),
        ("rsrp", 255, None),
        ("rscp", 0, -121),
        ("rscp", 1, -120),
        ("rscp", 96, -25),
        ("rscp", 255, None),
        ("rxlev", 0, -111),
        ("rxlev", 1, -110),
        ("rxlev", 63, -48),
        ("rxlev", 99, None),
    ],
)
def test_cesq_power_tables(metric: str, value: int, dbm: int | None) -> None:
    assert cesq_to_dbm(metric, value) == dbm


@pytest.mark.parametrize(("metric", "value"), [("rsrp", 98), ("rscp", 97), ("rxlev", 64)])
def test_cesq_power_out_of_range(metric: str, value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        cesq_to_dbm(metric, value)


def test_cesq_quality_tables() -> None:
    assert [cesq_rsrq_db(v) for v in (0, 1, 34, 255)] == [-20, -19.5, -3, None]
    assert [cesq_ecno_db(v) for v in (0, 1, 49, 255)] == [-24.5, -24, 0, None]
    with pytest.raises(ValueError):
        cesq_rsrq_db(35)


def test_parse_csq() -> None:
    r = parse_csq("+CSQ: 31,99")
    assert (r.dbm, r.metric, r.reason) == (-51.0, "rssi", None)
    unknown = parse_csq("+CSQ: 99,99")
    assert unknown.dbm is None and "99" in unknown.reason
    bad = parse_csq("+CSQ: 45,0")
    assert bad.dbm is None and "out of range" in bad.reason
    with pytest.raises(SignalParseError):
        parse_csq("+CSQ: x,0")
    with pytest.raises(SignalParseError):
        parse_csq("+CESQ: 1,2")


def test_parse_cesq_picks_the_reporting_rat() -> None:
    lte = parse_cesq("+CESQ: 99,99,255,255,20,41")
    assert (lte.dbm, lte.rat, lte.metric) == (-100.0, "LTE", "rsrp")
    umts = parse_cesq("+CESQ: 99,99,40,30,255,255")
    assert (umts.dbm, umts.rat) == (-81.0, "UMTS")
    gsm = parse_cesq("+CESQ: 20,0,255,255,255,255")
    assert (gsm.dbm, gsm.rat) == (-91.0, "GSM")
    # Rel-15 modems append NR fields; the LTE value still counts.
    assert parse_cesq("+CESQ: 99,99,255,255,20,41,255,255,255").dbm == -100.0


def test_parse_cesq_unknown_and_out_of_range() -> None:
    none = parse_cesq("+CESQ: 99,99,255,255,255,255")
    assert none.dbm is None and "not known" in none.reason
    bad = parse_cesq("+CESQ: 99,99,255,255,20,120")
    assert bad.dbm is None and "rsrp 120 out of range" in bad.reason
    with pytest.raises(SignalParseError):
        parse_cesq("+CESQ: 99,99,255")


def test_parse_qcsq() -> None:
    lte = parse_qcsq('+QCSQ: "LTE",-72,-101,150,-9')
    assert (lte.dbm, lte.rat, lte.metric) == (-101.0, "LTE", "rsrp")
    assert parse_qcsq('+QCSQ: "GSM",-85').dbm == -85.0
    assert parse_qcsq('+QCSQ: "WCDMA",-70,-90,-6').dbm == -90.0
    assert parse_qcsq('+QCSQ: "NR5G",-95,120,-11').dbm == -95.0
    assert parse_qcsq('+QCSQ: "NOSERVICE"').reason == "no service"
    assert parse_qcsq('+QCSQ: "NR5G",-32768,0,0').dbm is None
