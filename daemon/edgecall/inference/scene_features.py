"""Turn a call's 1 Hz quality trace (dBm) into the scene CNN's fixed-size input.

Training (`models/scene/train.py`) and runtime (`edgecall.inference.scene`) both
call `features()`, so the model always sees input prepared the same way.

Choice for variable call lengths: the time axis is kept in real seconds (no
resampling), because the scenes differ by how long fades last (an elevator is
10-60 s, a basement minutes), and stretching a 20 s call to 300 s would destroy
that. The last `WINDOW_S` seconds of the call are used, right-aligned (the end
of a call, when the caller hung up or the line dropped, is the part that names
the scene); shorter calls are padded on the left and an "in call" channel marks
the real samples.

Channels (float32, shape `(CHANNELS, WINDOW_S)`):
  0. level: (dBm - LEVEL_CENTER_DBM) / LEVEL_SCALE_DB, missing samples carried
     forward from the last valid one (leading gaps take the first valid value);
     0 in the padding;
  1. missing: 1 where the trunk gave no usable sample, else 0;
  2. in call: 1 for every second of the call, 0 in the padding.

A sample is missing when it is None, NaN, infinite, not a number, or outside
the plausible range [MIN_VALID_DBM, MAX_VALID_DBM] (a modem reporting +30 dBm or
-999 dBm is broken, not informative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

WINDOW_S = 300
CHANNELS = 3
LEVEL_CENTER_DBM = -90.0
LEVEL_SCALE_DB = 20.0
MIN_VALID_DBM = -150.0
MAX_VALID_DBM = -20.0


class SceneInputError(ValueError):
    """The trace is not a sequence of numbers / None (a caller's programming error)."""


def _sample(value: object) -> float:
    """One sample as float dBm, NaN when unusable."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan
    if not math.isfinite(x) or x < MIN_VALID_DBM or x > MAX_VALID_DBM:
        return math.nan
    return x


def clean_trace(trace_dbm: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Last WINDOW_S samples as float64 dBm with NaN for every unusable sample.

    Only the tail is read, so a trace of any length costs bounded time and memory.
    """
    if isinstance(trace_dbm, (str, bytes)) or not isinstance(trace_dbm, (Sequence, np.ndarray)):
        raise SceneInputError(
            f"quality trace must be a sequence of dBm values, got {type(trace_dbm).__name__}"
        )
    if isinstance(trace_dbm, np.ndarray) and trace_dbm.ndim != 1:
        raise SceneInputError(f"quality trace must be 1-D, got shape {trace_dbm.shape}")
    tail = trace_dbm[-WINDOW_S:] if len(trace_dbm) else []
    return np.array([_sample(v) for v in tail], dtype=np.float64)


def valid_count(trace_dbm: Sequence[float | None] | np.ndarray) -> int:
    """Number of usable samples in the part of the trace the model reads."""
    return int(np.count_nonzero(~np.isnan(clean_trace(trace_dbm))))


def features(trace_dbm: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The model input `(CHANNELS, WINDOW_S)` float32 for one trace."""
    return features_of_clean(clean_trace(trace_dbm))


def features_of_clean(x: np.ndarray) -> np.ndarray:
    """`features()` of a trace already passed through `clean_trace()`."""
    out = np.zeros((CHANNELS, WINDOW_S), dtype=np.float32)
    n = len(x)
    if n == 0:
        return out
    missing = np.isnan(x)
    level = x.copy()
    if missing.all():
        level[:] = LEVEL_CENTER_DBM
    else:
        # carry the last valid sample forward; leading gaps take the first valid one
        idx = np.where(~missing, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        level = x[idx]
        first = int(np.argmax(~missing))
        level[:first] = x[first]
    start = WINDOW_S - n
    out[0, start:] = (level - LEVEL_CENTER_DBM) / LEVEL_SCALE_DB
    out[1, start:] = missing
    out[2, start:] = 1.0
    return out


def batch_features(traces: Sequence[Sequence[float | None] | np.ndarray]) -> np.ndarray:
    """Stack `features()` of many traces into `(N, CHANNELS, WINDOW_S)` float32."""
    if not traces:
        return np.zeros((0, CHANNELS, WINDOW_S), dtype=np.float32)
    return np.stack([features(t) for t in traces])
