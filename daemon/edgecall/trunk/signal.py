"""Modem signal reports (AT+CSQ, AT+CESQ, Quectel AT+QCSQ) converted to dBm.

Pure functions: the numbers follow 3GPP TS 27.007 (+CSQ, +CESQ) and Quectel's
manuals (+QCSQ). Each report becomes one `SignalReading`; an unknown value
(99 / 255 / "NOSERVICE") or an out-of-range one gives `dbm=None` and a reason,
never an exception, because the quality combiner must fall back, not crash.

Which metric is "the" signal: the serving RAT's strength measure. LTE gives
RSRP (about -140..-44 dBm), UMTS RSCP (-120..-25), GSM RXLEV/RSSI (-110..-48).
They are not the same physical quantity, but each is what the operator's
"bars" are built from on that RAT, and only RSRP/RSCP reach below -113 dBm, the
floor of AT+CSQ: with AT+CSQ alone the default -120 dBm threshold never fires.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SignalReading:
    """One signal report: `dbm` is None when the modem could not tell (see `reason`)."""

    dbm: float | None
    rat: str | None = None  # "GSM", "UMTS", "LTE", "NR5G", ...
    metric: str | None = None  # "rssi", "rxlev", "rscp", "rsrp"
    raw: str = ""
    reason: str | None = None


class SignalParseError(ValueError):
    """The line is not a report of the expected command."""


_INT = re.compile(r"^-?\d+$")


def _fields(line: str, prefix: str) -> list[str]:
    text = line.strip()
    if not text.upper().startswith(prefix.upper()):
        raise SignalParseError(f"expected {prefix!r}, got {text[:40]!r}")
    return [f.strip() for f in text[len(prefix) :].split(",")]


def _ints(fields: list[str], line: str) -> list[int]:
    if not all(_INT.match(f) for f in fields):
        raise SignalParseError(f"non-numeric field in {line.strip()[:60]!r}")
    return [int(f) for f in fields]


# --- AT+CSQ ---------------------------------------------------------------------------


def csq_rssi_to_dbm(rssi: int) -> int | None:
    """TS 27.007 <rssi>: 0 -> -113 (or less), 1 -> -111, 2..30 -> -109..-53, 31 -> -51
    (or greater), 99 -> None (unknown). Anything else raises ValueError."""
    if rssi == 99:
        return None
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    raise ValueError(f"rssi {rssi} out of range 0..31/99")


def parse_csq(line: str) -> SignalReading:
    """`+CSQ: <rssi>,<ber>` -> reading (metric rssi, RAT unknown)."""
    fields = _fields(line, "+CSQ:")
    if len(fields) != 2:
        raise SignalParseError(f"+CSQ needs 2 fields: {line.strip()!r}")
    rssi, _ber = _ints(fields, line)
    raw = line.strip()
    try:
        dbm = csq_rssi_to_dbm(rssi)
    except ValueError as exc:
        return SignalReading(None, metric="rssi", raw=raw, reason=str(exc))
    if dbm is None:
        return SignalReading(None, metric="rssi", raw=raw, reason="rssi 99 (not known)")
    return SignalReading(float(dbm), metric="rssi", raw=raw)


# --- AT+CESQ --------------------------------------------------------------------------

# (name, RAT, highest index, dBm of index 0, unknown value); each step is 1 dB and
# index 0 means "below" (reported as the lower edge), the top index "at or above".
_CESQ_POWER = {
    "rxlev": ("GSM", 63, -111, 99),  # 0: < -110, 1: -110..-109, 63: >= -48
    "rscp": ("UMTS", 96, -121, 255),  # 0: < -120, 1: -120..-119, 96: >= -25
    "rsrp": ("LTE", 97, -141, 255),  # 0: < -140, 1: -140..-139, 97: >= -44
}


def cesq_to_dbm(metric: str, value: int) -> int | None:
    """TS 27.007 +CESQ power field to dBm (lower edge of its 1 dB band).

    rxlev 0..63 -> -111..-48 (99 unknown); rscp 0..96 -> -121..-25 (255 unknown);
    rsrp 0..97 -> -141..-44 (255 unknown). Out of range raises ValueError.
    """
    _rat, top, base, unknown = _CESQ_POWER[metric]
    if value == unknown:
        return None
    if 0 <= value <= top:
        return base + value
    raise ValueError(f"{metric} {value} out of range 0..{top}/{unknown}")


def cesq_ecno_db(value: int) -> float | None:
    """<ecno> 0..49 -> -24.5..0 dB in 0.5 dB steps; 255 unknown."""
    if value == 255:
        return None
    if 0 <= value <= 49:
        return -24.5 + value / 2
    raise ValueError(f"ecno {value} out of range 0..49/255")


def cesq_rsrq_db(value: int) -> float | None:
    """<rsrq> 0..34 -> -20..-3 dB in 0.5 dB steps; 255 unknown."""
    if value == 255:
        return None
    if 0 <= value <= 34:
        return -20 + value / 2
    raise ValueError(f"rsrq {value} out of range 0..34/255")


def parse_cesq(line: str) -> SignalReading:
    """`+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>[,...]` -> the RAT that reports.

    A modem fills only its serving RAT's fields; the rest are 99/255. Preference when
    several report (during handover): LTE rsrp, then UMTS rscp, then GSM rxlev.
    Fields after the sixth (Rel-15 NR ss_rsrq/ss_rsrp/ss_sinr) are ignored here.
    """
    fields = _fields(line, "+CESQ:")
    if len(fields) < 6:
        raise SignalParseError(f"+CESQ needs 6 fields: {line.strip()!r}")
    values = _ints(fields[:6], line)
    raw = line.strip()
    by_name = {"rxlev": values[0], "rscp": values[2], "rsrp": values[5]}
    problems: list[str] = []
    for metric in ("rsrp", "rscp", "rxlev"):
        rat = _CESQ_POWER[metric][0]
        try:
            dbm = cesq_to_dbm(metric, by_name[metric])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if dbm is not None:
            return SignalReading(float(dbm), rat=rat, metric=metric, raw=raw)
    reason = "; ".join(problems) if problems else "all RATs not known (99/255)"
    return SignalReading(None, raw=raw, reason=reason)


# --- Quectel AT+QCSQ ------------------------------------------------------------------

# sysmode -> (index of the strength field after sysmode, metric)
_QCSQ_STRENGTH = {
    "GSM": (0, "rssi"),
    "WCDMA": (1, "rscp"),
    "TDSCDMA": (1, "rscp"),
    "LTE": (1, "rsrp"),
    "CAT-M": (1, "rsrp"),
    "CAT-NB": (1, "rsrp"),
    "NR5G": (0, "rsrp"),
    "CDMA": (0, "rssi"),
    "HDR": (0, "rssi"),
}
_QCSQ_RANGE = (-160, -20)  # values outside are the modem's "invalid" markers


def parse_qcsq(line: str) -> SignalReading:
    """`+QCSQ: "LTE",<rssi>,<rsrp>,<sinr>,<rsrq>` etc. (values already in dBm)."""
    fields = _fields(line, "+QCSQ:")
    raw = line.strip()
    sysmode = fields[0].strip('"').upper()
    if sysmode == "NOSERVICE":
        return SignalReading(None, raw=raw, reason="no service")
    if sysmode not in _QCSQ_STRENGTH:
        return SignalReading(None, raw=raw, reason=f"unknown sysmode {sysmode!r}")
    index, metric = _QCSQ_STRENGTH[sysmode]
    values = fields[1:]
    if index >= len(values) or not _INT.match(values[index]):
        raise SignalParseError(f"+QCSQ {sysmode} without a strength field: {raw!r}")
    dbm = int(values[index])
    if not _QCSQ_RANGE[0] <= dbm <= _QCSQ_RANGE[1]:
        return SignalReading(
            None, rat=sysmode, metric=metric, raw=raw, reason=f"{metric} {dbm} out of range"
        )
    return SignalReading(float(dbm), rat=sysmode, metric=metric, raw=raw)
