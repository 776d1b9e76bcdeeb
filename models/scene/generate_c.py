"""Story C of the scene traces: an LTE modem polled slowly, piecewise-linear events.

A third world for the scene CNN (issue 19), different from story A
(generate.py) and story B (generate_b.py). In short:

- reporting: RSRP in 1 dB steps, clipped to [-140, -44], with a per-modem
  offset (±6 dB); the modem refreshes its value only every 2-5 s (the daemon
  sees the same number for several seconds); when service goes, the last value
  sticks for 1-4 s before the modem says unknown; the first 0-5 s of a call have
  no sample (the poll has not run yet); no service is reported as missing (50 %
  of trunks) or as -140 (50 %); 0.5 % of samples are outliers (±15 dB).
- noise: Laplace measurement noise, scale 1-3 dB, plus a slow random walk.
- call lengths: half short (15-90 s), half long (90-900 s).
- normal: -115..-65 dBm (weak indoor coverage included), piecewise-constant
  cell reselections of 3-6 dB every 30-200 s.
- elevator: one ride in a tall building: linear drop over 2-6 s by 20-35 dB,
  15-90 s inside, service lost all along in 70 % of rides, linear recovery 2-6 s;
  50 % of calls end inside.
- basement: a linear descent of 10-90 s down to -110..-125 dBm; below -120 dBm
  service is lost more and more often; 15 % start underground, 10 % leave.
- tunnel: highway driving (handover steps of 4-12 dB every 10-40 s, fast
  fading sd 3-6 dB correlated over 1-2 s), then a long tunnel of 30-300 s, linear
  ramps of 2-10 s, 35-55 dB down, no service in 90 % of tunnels; 50 % end inside.
- driving: the same highway driving.
"""

from __future__ import annotations

import numpy as np
from generate import SCENE_NAMES, ar1


def _length(rng: np.random.Generator) -> int:
    return int(rng.uniform(15, 90) if rng.random() < 0.5 else rng.uniform(90, 900))


def _still(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    x = np.full(n, base)
    t = int(rng.uniform(10, 200))
    while t < n:
        x[t:] += rng.choice((-1, 1)) * rng.uniform(3, 6)
        t += int(rng.uniform(30, 200))
    walk = np.cumsum(rng.normal(0, 0.3, n))
    return x + walk - walk.mean() + rng.laplace(0, rng.uniform(1, 3), n)


def _highway(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    x = np.full(n, base)
    t = int(rng.uniform(0, 30))
    while t < n:
        x[t:] = base + rng.uniform(-4, 4) + rng.choice((-1, 1)) * rng.uniform(4, 12) / 2
        t += int(rng.uniform(10, 40))
    return x + ar1(n, rng.uniform(1, 2), rng.uniform(3, 6), rng)


def _piecewise(n: int, s: int, down: int, dwell: int, up: int) -> np.ndarray:
    """Attenuation profile 0..1: linear down, flat for dwell s, linear up."""
    t = np.arange(n, dtype=np.float64)
    rise = np.clip((t - s) / max(down, 1), 0, 1)
    fall = np.clip((t - (s + down + dwell)) / max(up, 1), 0, 1)
    return rise - fall


def _end_inside_or_not(n: int, before: int, inside: int, p_end: float, rng) -> int:
    """Event start: the call ends during the event with probability p_end."""
    if rng.random() < p_end:
        return n - before - int(rng.uniform(0.2, 0.9) * inside)
    return int(rng.uniform(3, max(4, n - before - inside)))


def _normal(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _still(n, rng.uniform(-115, -65), rng), np.zeros(n, dtype=bool)


def _fade(
    x: np.ndarray,
    ramp: tuple[float, float],
    dwell: tuple[float, float],
    depth: tuple[float, float],
    p_outage: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One linear fade (down, flat, up); with p_outage, no service all along the flat
    part; half the calls end inside it."""
    n = len(x)
    down, inside, up = int(rng.uniform(*ramp)), int(rng.uniform(*dwell)), int(rng.uniform(*ramp))
    w = _piecewise(n, _end_inside_or_not(n, down, inside, 0.5, rng), down, inside, up)
    outage = (w >= 1.0) & (rng.random() < p_outage)
    return x - rng.uniform(*depth) * w, outage


def _elevator(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _fade(_still(n, rng.uniform(-100, -65), rng), (2, 7), (15, 90), (20, 35), 0.7, rng)


def _basement(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(-100, -65)
    x = _still(n, base, rng)
    depth = base - rng.uniform(-125, -110)
    if rng.random() < 0.15:
        w = np.ones(n)
    else:
        down = int(rng.uniform(10, 90))
        s = int(rng.uniform(3, max(4, n - down // 2)))
        dwell = int(rng.uniform(60, 200)) if rng.random() < 0.1 else n
        w = _piecewise(n, s, down, dwell, int(rng.uniform(10, 60)))
    level = x - depth * w
    p_lost = np.clip((-120 - level) / 15, 0, 0.8)
    return level, rng.random(n) < p_lost


def _tunnel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = _highway(n, rng.uniform(-100, -70), rng)
    return _fade(x, (2, 11), (30, 300), (35, 55), 0.9, rng)


def _driving(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _highway(n, rng.uniform(-105, -70), rng), np.zeros(n, dtype=bool)


_BUILDERS = {scene: globals()[f"_{scene}"] for scene in SCENE_NAMES}


def _report(level: np.ndarray, outage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(level)
    x = level + rng.uniform(-6, 6)
    spikes = rng.random(n) < 0.005
    x[spikes] += rng.choice((-15.0, 15.0), int(spikes.sum()))
    # the modem refreshes every 2-5 s; the daemon repeats the last value meanwhile
    refresh = int(rng.integers(2, 6))
    phase = int(rng.integers(0, refresh))
    held = np.maximum((np.arange(n) - phase) // refresh * refresh + phase, 0)
    x = x[held]
    lost = outage[held] | (x < -130)
    stick = int(rng.integers(1, 5))  # the last value sticks before "unknown"
    starts = np.flatnonzero(lost & ~np.r_[False, lost[:-1]])
    for s in starts:
        lost[s : s + stick] = False
        x[s : s + stick] = x[s - 1] if s > 0 else x[s]
    x = np.clip(np.round(x), -140.0, -44.0)
    x[lost] = -140.0 if rng.random() < 0.5 else np.nan
    x[: int(rng.integers(0, 6))] = np.nan
    return x


def generate_trace(scene: str, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
    """One reported trace (float64 dBm, NaN = missing sample) of the given scene."""
    if scene not in _BUILDERS:
        raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENE_NAMES)}")
    n = length or _length(rng)
    level, outage = _BUILDERS[scene](n, rng)
    return _report(level, outage, rng)
