"""Per-second call quality from RTP/RTCP counters, and an E-model MOS estimate.

Pure functions: the SIP layer reads cumulative counters from the media stream
once per second and this module turns two consecutive readings into one sample.

E-model (ITU-T G.107, simplified as in G.107 Annex/G.113 practice for VoIP):

    R = R0 - Is - Id - Ie_eff + A,   with R0 - Is = 93.2 (default values), A = 0
    Id  = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)     d = one-way mouth-to-ear delay in ms
    Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)   Ppl = packet loss in percent
    MOS = 1                                            if R <= 0
        = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6      if 0 < R < 100
        = 4.5                                          if R >= 100

d is estimated as RTT/2 (network) + jitter-buffer delay + codec/packetisation
delay (ptime + codec look-ahead); before the first RTCP report, RTT is unknown
and 2 x jitter stands in for the network part. Ie/Bpl per codec come from
ITU-T G.113 Appendix I (G.711 with PLC: Ie 0, Bpl 25.1; G.722 is scored on the
same narrowband scale with Bpl 25.1, which understates its wideband quality but
keeps one threshold for every codec). BurstR = 1 (random loss).
"""

from __future__ import annotations

from dataclasses import dataclass

# (Ie, Bpl, look-ahead ms) per codec name as pjmedia reports it.
CODEC_IMPAIRMENT: dict[str, tuple[float, float, float]] = {
    "PCMU": (0.0, 25.1, 0.0),
    "PCMA": (0.0, 25.1, 0.0),
    "G722": (0.0, 25.1, 1.5),
}
_DEFAULT_IMPAIRMENT = (10.0, 20.0, 5.0)


@dataclass(frozen=True, slots=True)
class RtpCounters:
    """Cumulative receive-side counters of one stream at one instant."""

    rx_packets: int
    rx_lost: int
    rx_discarded: int
    jitter_ms: float
    rtt_ms: float | None
    jbuf_delay_ms: float


@dataclass(frozen=True, slots=True)
class QualityFigures:
    """What one second of a call looked like."""

    rx_packets: int
    loss_pct: float
    discard_pct: float
    jitter_ms: float
    rtt_ms: float | None
    delay_ms: float
    r_factor: float
    mos: float


def interval_figures(
    prev: RtpCounters | None, cur: RtpCounters, codec: str, ptime_ms: float = 20.0
) -> QualityFigures:
    """Figures for the interval between two readings (from call start when prev is None).

    An interval in which nothing arrived counts as 100% loss: a caller who stops
    sending RTP is as bad as a network that drops everything.
    """
    base = prev or RtpCounters(0, 0, 0, 0.0, None, 0.0)
    pkts = max(0, cur.rx_packets - base.rx_packets)
    lost = max(0, cur.rx_lost - base.rx_lost)
    disc = max(0, cur.rx_discarded - base.rx_discarded)
    expected = pkts + lost
    loss_pct = 100.0 if pkts == 0 else 100.0 * lost / expected
    discard_pct = 0.0 if pkts == 0 else min(100.0, 100.0 * disc / pkts)
    ie, bpl, lookahead = CODEC_IMPAIRMENT.get(codec.upper(), _DEFAULT_IMPAIRMENT)
    network = cur.rtt_ms / 2.0 if cur.rtt_ms is not None else 2.0 * cur.jitter_ms
    delay = network + cur.jbuf_delay_ms + ptime_ms + lookahead
    r = r_factor(delay, min(100.0, loss_pct + discard_pct), ie, bpl)
    return QualityFigures(
        rx_packets=pkts,
        loss_pct=round(loss_pct, 2),
        discard_pct=round(discard_pct, 2),
        jitter_ms=round(cur.jitter_ms, 2),
        rtt_ms=None if cur.rtt_ms is None else round(cur.rtt_ms, 2),
        delay_ms=round(delay, 1),
        r_factor=round(r, 1),
        mos=round(mos_from_r(r), 2),
    )


def r_factor(
    delay_ms: float, loss_pct: float, ie: float = 0.0, bpl: float = 25.1, burst_r: float = 1.0
) -> float:
    """G.107 transmission rating R for a one-way delay and a packet loss percentage."""
    d = max(0.0, delay_ms)
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(100.0, loss_pct))
    ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)
    return 93.2 - i_d - ie_eff


def mos_from_r(r: float) -> float:
    """G.107 Annex B mapping of R to the conversational MOS (1.0 .. 4.5)."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
