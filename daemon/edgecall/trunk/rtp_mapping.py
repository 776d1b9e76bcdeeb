"""RTP/RTCP statistics of one interval mapped onto the dBm scale. Pure.

When the trunk cannot tell the caller's signal, the stability of the received
audio stands in for it, on the same scale so one threshold (-120 dBm) serves
every source. With the defaults a flawless stream is -70 dBm, 20% loss alone
gives -120 dBm (the poor-signal threshold), and nothing goes below -130 dBm:

    dBm = best_dbm - loss_pct * dbm_per_loss_pct - jitter_ms * dbm_per_jitter_ms
          - discard_pct * dbm_per_discard_pct, clamped to [floor_dbm, best_dbm]

The statistics dict, pushed by the telephony layer once per interval, covers that
interval only: `loss_pct` (0..100, required), `jitter_ms` (>= 0, required) and
`discard_pct` (0..100, optional, jitter-buffer discards).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edgecall.config.trunk import RtpMappingConfig


class RtpStatsError(ValueError):
    """The statistics dict is missing a value or holds an impossible one."""


def rtp_to_dbm(
    loss_pct: float, jitter_ms: float, discard_pct: float, config: RtpMappingConfig
) -> float:
    for name, value, top in (
        ("loss_pct", loss_pct, 100.0),
        ("jitter_ms", jitter_ms, math.inf),
        ("discard_pct", discard_pct, 100.0),
    ):
        if not (isinstance(value, int | float) and 0 <= value <= top) or math.isnan(value):
            raise RtpStatsError(f"{name}={value!r} is not within 0..{top:g}")
    dbm = (
        config.best_dbm
        - loss_pct * config.dbm_per_loss_pct
        - jitter_ms * config.dbm_per_jitter_ms
        - discard_pct * config.dbm_per_discard_pct
    )
    return max(config.floor_dbm, min(config.best_dbm, dbm))


def rtp_stats_to_dbm(stats: Mapping[str, object], config: RtpMappingConfig) -> float:
    """The dict form pushed by the telephony layer; raises RtpStatsError on bad input."""
    missing = [k for k in ("loss_pct", "jitter_ms") if k not in stats]
    if missing:
        raise RtpStatsError(f"RTP stats lack {', '.join(missing)}")
    return rtp_to_dbm(
        stats["loss_pct"],  # type: ignore[arg-type]
        stats["jitter_ms"],  # type: ignore[arg-type]
        stats.get("discard_pct", 0.0),  # type: ignore[arg-type]
        config,
    )
