"""Seeded generator of labelled 1 Hz call-quality traces (dBm) for the scene CNN.

No labelled field traces exist for this project, so the training data is
synthesised from how cellular signal strength (RSRP-like, dBm) behaves in each
scene. Every assumption is listed in MODEL_CARD.md; in short:

- normal:   stationary caller; stable level (-110..-60 dBm), slow shadowing
            (a few dB), small measurement noise, sometimes a short shallow dip
            (turning round, a hand over the phone).
- elevator: stationary before; a metal box cuts the signal abruptly (1-2 s) by
            25-45 dB for 10-60 s, often down to no service; abrupt recovery when
            the doors open (possibly on another floor: a few dB different).
- basement: walking down stairs or a ramp: slow entry (20-60 s) to a long
            attenuation of 20-40 dB, high variance (reflections, moving between
            rooms) and bursts of no service; the underground level is
            -100 dBm or lower; rarely leaves again during the call;
            sometimes the call starts already underground.
- tunnel:   driving before (fast fading, handovers); a gradual ramp down when
            entering (4-15 s at road speed), a deep fade of 30-50 dB, mostly no
            service, lasting 20-150 s; a gradual ramp up when leaving.
- driving:  fast fading (3-4 dB per-second spread after the modem's averaging),
            short shadowing, and a serving-cell sawtooth: the level drifts down
            towards the cell edge and jumps up at each handover (every 25-90 s).

What the appliance receives is modelled too: values are rounded to integer dBm,
clipped to the RSRP reporting range [-140, -44]; below -130 dBm there is no
service, reported either as a missing sample or as the -140 floor (per trunk);
isolated missing samples (0-3 %) and short reporting gaps (2-6 s) happen in
every scene. Call lengths are uniform in 20-300 s; a call may end inside the
fade (the caller hung up or the call dropped), which is what triggers a redial.

Usage: `python generate.py --seed 7 --per-scene 2` prints example traces as
JSON lines (`{"scene": ..., "trace": [...]}`, missing samples as null).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

SCENE_NAMES = ("normal", "elevator", "basement", "tunnel", "driving")
MIN_CALL_S = 20
MAX_CALL_S = 300
RSRP_MIN_DBM = -140.0
RSRP_MAX_DBM = -44.0
NO_SERVICE_DBM = -130.0


def ar1(n: int, tau_s: float, sigma_db: float, rng: np.random.Generator) -> np.ndarray:
    """Slow log-normal shadowing: AR(1) with correlation time tau_s and std sigma_db."""
    a = float(np.exp(-1.0 / tau_s))
    e = rng.normal(0.0, sigma_db * np.sqrt(1.0 - a * a), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma_db)
    for t in range(1, n):
        x[t] = a * x[t - 1] + e[t]
    return x


def bursts(n: int, p_off: float, p_on: float, rng: np.random.Generator) -> np.ndarray:
    """Bursty loss: a two-state chain that goes off with p_off per second, back with p_on."""
    out = np.zeros(n, dtype=bool)
    off = False
    for t in range(n):
        off = (rng.random() > p_on) if off else (rng.random() < p_off)
        out[t] = off
    return out


def _stationary(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    """A caller standing or sitting still: stable level, slow shadowing, small noise."""
    x = base + ar1(n, rng.uniform(10, 40), rng.uniform(1.0, 3.0), rng)
    return x + rng.normal(0.0, rng.uniform(0.5, 1.5), n)


def _driving(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    """Moving vehicle: cell sawtooth with handover jumps, short shadowing, fast fading."""
    period = rng.uniform(25, 90)
    level = np.empty(n)
    t = -int(rng.uniform(0, period))  # the call starts somewhere inside a cell
    while t < n:
        seg = max(8, int(period * rng.uniform(0.7, 1.3)))
        u = np.arange(seg) / seg
        cell = base + rng.uniform(-4, 4)
        depth = rng.uniform(6, 16)
        # passing the site (rise then fall), or driving away from it towards the edge
        passing = rng.random() < 0.5
        shape = cell - depth * (np.abs(2 * u - 1) ** 1.5 if passing else u)
        lo, hi = max(t, 0), min(t + seg, n)
        if hi > lo:
            level[lo:hi] = shape[lo - t : hi - t]
        t += seg
    level += ar1(n, rng.uniform(3, 8), rng.uniform(2.0, 4.0), rng)
    return level + rng.normal(0.0, rng.uniform(2.5, 4.0), n)


def _ramp(n: int, frac_step: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """0 -> 1 over n samples; with frac_step > 0 it goes in uneven steps (stairs)."""
    if n <= 0:
        return np.zeros(0)
    r = (np.arange(1, n + 1)) / n
    if frac_step and rng is not None:
        steps = max(2, int(n * frac_step))
        edges = np.sort(rng.uniform(0, 1, steps))
        r = np.searchsorted(edges, r, side="right") / steps * 0.6 + r * 0.4
    return r


def _normal(n: int, rng: np.random.Generator) -> np.ndarray:
    x = _stationary(n, rng.uniform(-110, -60), rng)
    for _ in range(rng.integers(0, 3) if rng.random() < 0.3 else 0):
        d = int(rng.integers(2, 6))
        s = int(rng.integers(0, max(1, n - d)))
        x[s : s + d] -= rng.uniform(3, 8)
    return x


def _event_start(n: int, min_before: int, min_inside: int, rng: np.random.Generator) -> int:
    """Where a fade starts so that at least `min_inside` seconds of it are in the call."""
    return int(rng.integers(min_before, max(min_before + 1, n - min_inside + 1)))


def _elevator(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(-95, -60)
    x = _stationary(n, base, rng)
    dur = int(rng.uniform(10, 60))
    if rng.random() < 0.35:  # the call ends (hung up / dropped) inside the elevator
        s = n - int(rng.uniform(8, min(dur, n - 5) + 1))
    else:
        s = _event_start(n, 5, min(dur, 8), rng)
    s = max(s, 5)
    e = min(s + dur, n)
    depth = rng.uniform(25, 45)
    att = np.zeros(n)
    t_in, t_out = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    att[s:e] = depth
    att[s : s + t_in] = depth * _ramp(min(t_in, e - s))
    if e < n:
        k = min(t_out, e - s)
        att[e - k : e] = depth * _ramp(k)[::-1]
        x[e:] += rng.uniform(-5, 5)  # doors open on another floor
    att[s:e] += rng.normal(0, rng.uniform(2, 4), e - s)
    outage = np.zeros(n, dtype=bool)
    if rng.random() < 0.6:  # metal box: often no service at all
        outage[s + t_in : max(s + t_in, e - t_out)] = True
    return x - att, outage


def _basement(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(-95, -60)
    x = _stationary(n, base, rng)
    # 20-40 dB below street level, and underground means weak: -100 dBm or lower
    depth = max(rng.uniform(20, 40), base + rng.uniform(100, 115))
    ramp = int(rng.uniform(20, 60))
    att = np.zeros(n)
    if rng.random() < 0.25 or n < 35:  # already underground when the call starts
        s, ramp = 0, 0
        att[:] = depth
    else:
        s = _event_start(n, 5, min(ramp, n - 10), rng)
        k = min(ramp, n - s)
        att[s : s + k] = depth * _ramp(ramp, 0.15, rng)[:k]
        att[s + k :] = depth
    inside = s + ramp
    if inside < n and rng.random() < 0.2 and n - inside > 80:  # walks out again, slowly
        out_at = int(rng.integers(inside + 60, n - 10))
        k = min(int(rng.uniform(20, 50)), n - out_at)
        att[out_at : out_at + k] = depth * _ramp(k)[::-1]
        att[out_at + k :] = 0.0
    under = att > 0.5 * depth
    att += under * (ar1(n, rng.uniform(3, 10), rng.uniform(4, 7), rng))
    att += under * rng.normal(0, rng.uniform(1.5, 3.0), n)
    # bursty loss of service underground (two-state Markov chain)
    outage = np.zeros(n, dtype=bool)
    p_off, p_on = rng.uniform(0.05, 0.15), rng.uniform(0.08, 0.3)
    off = False
    for t in range(n):
        off = (rng.random() > p_on) if off else (rng.random() < p_off)
        outage[t] = off and under[t]
    return x - att, outage


def _tunnel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(-95, -65)
    x = _driving(n, base, rng)
    down, up = int(rng.uniform(4, 15)), int(rng.uniform(4, 15))
    dur = int(rng.uniform(20, 150))
    depth = rng.uniform(30, 50)
    if rng.random() < 0.4:  # the call drops inside the tunnel
        s = n - down - int(rng.uniform(5, max(6, min(dur, n - down - 5))))
    else:
        s = _event_start(n, 5, down + 5, rng)
    s = max(s, 5)
    att = np.zeros(n)
    k = min(down, n - s)
    att[s : s + k] = depth * _ramp(down)[:k]
    e_full = min(s + down + dur, n)
    att[s + k : e_full] = depth
    if e_full < n:
        k2 = min(up, n - e_full)
        att[e_full : e_full + k2] = depth * _ramp(up)[::-1][:k2]
    inside = np.zeros(n, dtype=bool)
    inside[s + down : e_full] = True
    # inside the tunnel the vehicle's fast fading is gone: no signal, or leaky residue
    x[inside] = base + rng.normal(0, rng.uniform(1.0, 2.5), int(inside.sum()))
    outage = inside & (rng.random() < 0.7)
    return x - att, outage


def _driving_scene(n: int, rng: np.random.Generator) -> np.ndarray:
    return _driving(n, rng.uniform(-105, -70), rng)


_BUILDERS: dict[str, Callable[[int, np.random.Generator], object]] = {
    "normal": _normal,
    "elevator": _elevator,
    "basement": _basement,
    "tunnel": _tunnel,
    "driving": _driving_scene,
}


def _report(level: np.ndarray, outage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the trunk reports: integer dBm in the RSRP range, no-service and gaps as NaN."""
    floor_style = rng.random() < 0.4  # some modems report the floor instead of nothing
    x = np.clip(np.round(level), RSRP_MIN_DBM, RSRP_MAX_DBM)
    no_service = outage | (level < NO_SERVICE_DBM)
    x[no_service] = RSRP_MIN_DBM if floor_style else np.nan
    n = len(x)
    x[rng.random(n) < rng.uniform(0.0, 0.03)] = np.nan  # isolated lost reports
    for _ in range(int(rng.integers(0, 3))):  # modem poll timeouts
        d = int(rng.integers(2, 7))
        s = int(rng.integers(0, max(1, n - d)))
        x[s : s + d] = np.nan
    return x


def generate_trace(scene: str, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
    """One reported trace (float64 dBm, NaN = missing sample) of the given scene."""
    if scene not in _BUILDERS:
        raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENE_NAMES)}")
    n = int(length) if length is not None else int(rng.integers(MIN_CALL_S, MAX_CALL_S + 1))
    out = _BUILDERS[scene](n, rng)
    level, outage = out if isinstance(out, tuple) else (out, np.zeros(n, dtype=bool))
    return _report(level, outage, rng)


TraceFn = Callable[[str, np.random.Generator], np.ndarray]


def generate_dataset(
    per_scene: int,
    seed: int,
    scenes: tuple[str, ...] = SCENE_NAMES,
    trace_fn: TraceFn = generate_trace,
) -> tuple[list[np.ndarray], np.ndarray]:
    """`per_scene` traces of each scene from `trace_fn` (a story's generate_trace),
    shuffled; labels index into `scenes`."""
    rng = np.random.default_rng(seed)
    traces: list[np.ndarray] = []
    labels: list[int] = []
    for i, scene in enumerate(scenes):
        for _ in range(per_scene):
            traces.append(trace_fn(scene, rng))
            labels.append(i)
    order = rng.permutation(len(traces))
    return [traces[i] for i in order], np.asarray(labels, dtype=np.int64)[order]


def as_reported(trace: np.ndarray) -> list[float | None]:
    """The trace as the daemon sees it: a list of integer-valued floats and None."""
    return [None if np.isnan(v) else float(v) for v in trace]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-scene", type=int, default=1)
    args = ap.parse_args(argv)
    traces, labels = generate_dataset(args.per_scene, args.seed)
    for trace, label in zip(traces, labels, strict=True):
        print(json.dumps({"scene": SCENE_NAMES[label], "trace": as_reported(trace)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
