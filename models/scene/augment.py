"""Domain randomisation of the reporting chain, applied to any story's traces.

The stories disagree most about what happens between the radio and the daemon
(the modem's metric and floor, how often it refreshes, how no service is
reported, gaps) and about how long things last. Each training trace gets a
randomised copy passed through a random subset of these, so the model cannot
lean on one story's habits (issue 19). Each step is drawn with probability
P_STEP:

- time stretch by 0.6-1.6 (dwell times, ramp lengths, call length);
- a level offset of ±10 dB (another network or modem);
- sample-and-hold every 2-5 s (a slowly refreshed modem value);
- 2 dB steps (AT+CSQ) and a floor at -125..-105 dBm (the metric's lowest value);
- no-service runs (3 s or more) swapped between missing and the -140 floor;
- bursts of missing samples (two-state chain, 1-4 %/s to start).
"""

from __future__ import annotations

import numpy as np
from generate import bursts

P_STEP = 0.5
FLOOR_DBM = -140.0


def _stretch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = rng.uniform(0.6, 1.6)
    n = max(2, int(round(len(x) * f)))
    return x[np.minimum((np.arange(n) / f).astype(int), len(x) - 1)]


def _hold(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(2, 6))
    return x[np.arange(len(x)) // k * k]


def _coarse(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    floor = rng.uniform(-125, -105)
    y = np.floor(x / 2.0) * 2.0
    return np.where(np.isnan(y), y, np.maximum(y, np.floor(floor)))


def _swap_no_service(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = x.copy()
    floor = y <= FLOOR_DBM
    if floor.any():
        y[floor] = np.nan
        return y
    gap = np.isnan(y)
    run = np.convolve(gap, np.ones(3), mode="same") >= 3  # inside a run of 3+ gaps
    y[gap & run] = FLOOR_DBM
    return y


def _bursts(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lost = bursts(len(x), rng.uniform(0.01, 0.04), rng.uniform(0.3, 0.7), rng)
    return np.where(lost, np.nan, x)


def _offset(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x + np.round(rng.uniform(-10, 10)), FLOOR_DBM, -25.0)


STEPS = (_stretch, _offset, _hold, _coarse, _swap_no_service, _bursts)


def randomised(trace: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of the reported trace (NaN = missing) through a random subset of STEPS."""
    x = np.asarray(trace, dtype=np.float64)
    for step in STEPS:
        if rng.random() < P_STEP:
            x = step(x, rng)
    return x
