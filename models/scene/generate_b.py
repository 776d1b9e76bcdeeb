"""Story B of the scene traces: a 2G/3G modem, several events per call, smooth fades.

A second, independently assumed world for the scene CNN (issue 19), chosen to
differ from generate.py (story A) wherever A made a choice. In short:

- reporting: the trunk modem answers AT+CSQ (RSSI, 2 dB steps, -113..-51 dBm,
  99 = unknown) or AT+CESQ (UMTS RSCP, 1 dB, -121..-25; GSM RXLEV, 1 dB,
  -111..-48), so weak signal saturates at the metric's floor instead of going
  missing; each network/modem has its own level offset (±8 dB); the poller runs
  every 1.0-1.6 s and the daemon holds the latest report for each second
  (values repeat, some changes are never seen); lost reports come in bursts
  (two-state chain, 0-3 %/s to start, 30-70 %/s to end).
- noise: AR(2) shadowing (oscillating, as walking between reflections), sd
  1-4 dB, plus white noise 0.5-2 dB.
- call lengths: log-uniform 15-600 s (longer than the model's 300 s window).
- normal: -105..-55 dBm, a slow drift of up to ±6 dB over the call (walking
  slowly), 40 % of calls with 1-3 dips of 5-12 dB for 1-4 s.
- elevator: 1-3 rides of 5-40 s, each a sigmoid drop of 15-40 dB over 0-3 s;
  half the rides keep a weak leaky signal, the others lose service; 10-60 s
  stops with doors open between rides (level ±8 dB); 40 % of calls end in a ride.
- basement: exponential descent (time constant 3-15 s) by 15-35 dB, no
  absolute floor; underground sd 2-5 dB slow fluctuation; 30 % of calls start
  underground, 30 % come back up (10-30 s).
- tunnel: driving, then 1-3 tunnels of 8-90 s, 15-60 s apart, raised-cosine
  entry and exit of 2-8 s, 20-45 dB deep; inside either no service or a leaky
  feeder's -110..-100 dBm; 40 % of calls end inside the last tunnel.
- driving: Rayleigh fast fading averaged over 2-8 samples by the modem, a slow
  random walk (0.7-1.5 dB/√s) and handover steps of 3-10 dB every 15-60 s.
"""

from __future__ import annotations

import numpy as np
from generate import SCENE_NAMES, bursts

MIN_CALL_S = 15
MAX_CALL_S = 600
# metric: (lowest reported dBm, highest, step dB); levels below are in the metric's own terms
METRICS = {
    "csq_rssi": (-113.0, -51.0, 2.0),
    "cesq_rscp": (-121.0, -25.0, 1.0),
    "cesq_rxlev": (-111.0, -48.0, 1.0),
}


def _ar2(n: int, sigma_db: float, rng: np.random.Generator) -> np.ndarray:
    """Oscillating shadowing: AR(2) with complex poles (period 6-30 s), scaled to sigma_db."""
    r, period = rng.uniform(0.85, 0.97), rng.uniform(6, 30)
    a1, a2 = 2 * r * np.cos(2 * np.pi / period), -r * r
    e = rng.normal(0.0, 1.0, n + 50)
    x = np.zeros(n + 50)
    for t in range(2, n + 50):
        x[t] = a1 * x[t - 1] + a2 * x[t - 2] + e[t]
    x = x[50:]
    return x / (x.std() + 1e-9) * sigma_db


def _sigmoid_step(n: int, at: float, width_s: float) -> np.ndarray:
    """0 before `at`, 1 after, a logistic edge about width_s seconds wide."""
    t = np.arange(n, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(np.clip(-(t - at) / max(width_s / 4.0, 0.05), -50, 50)))


def _raised_cosine(n: int, s: int, e: int, edge: int) -> np.ndarray:
    """1 inside [s, e), cosine edges of `edge` s outside it, 0 elsewhere."""
    t = np.arange(n, dtype=np.float64)
    w = np.zeros(n)
    w[(t >= s) & (t < e)] = 1.0
    before = (t >= s - edge) & (t < s)
    w[before] = 0.5 - 0.5 * np.cos(np.pi * (t[before] - (s - edge)) / edge)
    after = (t >= e) & (t < e + edge)
    w[after] = 0.5 + 0.5 * np.cos(np.pi * (t[after] - e) / edge)
    return w


def _still(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    drift = np.linspace(0.0, rng.uniform(-6, 6), n)
    return base + drift + _ar2(n, rng.uniform(1, 4), rng) + rng.normal(0, rng.uniform(0.5, 2), n)


def _moving(n: int, base: float, rng: np.random.Generator) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, rng.uniform(0.7, 1.5), n))
    walk -= np.linspace(0, walk[-1], n)  # stays near the base over the call
    steps = np.zeros(n)
    t = int(rng.uniform(0, 40))
    while t < n:
        steps[t:] += rng.choice((-1, 1)) * rng.uniform(3, 10)
        steps[t:] -= 0.5 * steps[t]  # the next cell pulls back towards the base
        t += int(rng.uniform(15, 60))
    k = int(rng.integers(2, 9))
    power = rng.exponential(1.0, n + k)  # Rayleigh: exponential power
    fading = 10 * np.log10(np.convolve(power, np.ones(k) / k, mode="valid")[:n])
    return base + walk + steps + fading


def _events(
    n: int,
    dur: tuple[float, float],
    gap: tuple[float, float],
    min_start: int,
    rng: np.random.Generator,
) -> tuple[int, list[int], list[int]]:
    """1-3 events: (start of the first, durations, gaps between); 40 % of calls end
    inside the last one (the caller hung up or the call dropped)."""
    count = int(rng.integers(1, 4))
    durs = [int(rng.uniform(*dur)) for _ in range(count)]
    gaps = [int(rng.uniform(*gap)) for _ in range(count - 1)]
    span = sum(durs) + sum(gaps)
    if rng.random() < 0.4:
        return n - span + int(rng.uniform(0.2, 0.8) * durs[-1]), durs, gaps
    return int(rng.uniform(min_start, max(min_start + 1, n - span))), durs, gaps


def _normal(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = _still(n, rng.uniform(-105, -55), rng)
    if rng.random() < 0.4:
        for _ in range(int(rng.integers(1, 4))):
            d, s = int(rng.integers(1, 5)), int(rng.integers(0, n))
            x[s : s + d] -= rng.uniform(5, 12)
    return x, np.zeros(n, dtype=bool)


def _elevator(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = _still(n, rng.uniform(-95, -55), rng)
    outage = np.zeros(n, dtype=bool)
    s, durs, gaps = _events(n, (5, 40), (10, 60), 3, rng)
    for i, dur in enumerate(durs):
        e = s + dur
        depth = rng.uniform(15, 40)
        w = _sigmoid_step(n, s, rng.uniform(0, 3)) - _sigmoid_step(n, e, rng.uniform(0, 3))
        x -= depth * np.clip(w, 0, 1)
        if rng.random() < 0.5:
            outage[max(s + 1, 0) : max(e - 1, 0)] = True
        if i < len(gaps):
            x[max(e, 0) :] += rng.uniform(-8, 8)  # another floor
            s = e + gaps[i]
    return x, outage


def _basement(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = _still(n, rng.uniform(-95, -55), rng)
    depth = rng.uniform(15, 35)
    t = np.arange(n, dtype=np.float64)
    if rng.random() < 0.3:
        att = np.full(n, depth)
    else:
        s = rng.uniform(3, max(4, n - 15))
        att = depth * (1 - np.exp(-np.clip(t - s, 0, None) / rng.uniform(3, 15)))
        if rng.random() < 0.3 and n - s > 60:  # comes back up
            up = rng.uniform(s + 30, n - 10)
            att *= 1 - np.clip((t - up) / rng.uniform(10, 30), 0, 1)
    under = att > 0.5 * depth
    slow = _ar2(n, rng.uniform(2, 5), rng)
    return x - att + under * slow, np.zeros(n, dtype=bool)


def _tunnel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(-95, -65)
    x = _moving(n, base, rng)
    outage = np.zeros(n, dtype=bool)
    s, durs, gaps = _events(n, (8, 90), (15, 60), 5, rng)
    for i, dur in enumerate(durs):
        e, edge = s + dur, int(rng.integers(2, 9))
        w = _raised_cosine(n, s, e, edge)
        inside = w >= 1.0
        if rng.random() < 0.5:
            outage |= inside
        else:  # leaky feeder: weak, steady
            x[inside] = rng.uniform(-110, -100) + rng.normal(0, 1.5, int(inside.sum()))
            w = np.where(inside, 0.0, w)
        x -= rng.uniform(20, 45) * w
        if i < len(gaps):
            s = e + gaps[i]
    return x, outage


def _driving(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _moving(n, rng.uniform(-105, -65), rng), np.zeros(n, dtype=bool)


_BUILDERS = {scene: globals()[f"_{scene}"] for scene in SCENE_NAMES}


def _held(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each second shows the latest report of a poller running every 1.0-1.6 s."""
    n = len(x)
    period = rng.uniform(1.0, 1.6)
    times = np.cumsum(rng.uniform(0.8, 1.2, n + 2) * period) - rng.uniform(0, period)
    latest = np.searchsorted(times, np.arange(n), side="right") - 1
    return x[np.clip(np.floor(times[np.clip(latest, 0, None)]).astype(int), 0, n - 1)]


def _report(level: np.ndarray, outage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi, step = METRICS[str(rng.choice(list(METRICS)))]
    x = level + rng.uniform(-8, 8)  # this network's and modem's offset
    x = np.where(outage, np.nan, x)
    x = _held(x, rng)
    x = np.clip(np.floor((x - lo) / step) * step + lo, lo, hi)
    return np.where(bursts(len(x), rng.uniform(0, 0.03), rng.uniform(0.3, 0.7), rng), np.nan, x)


def generate_trace(scene: str, rng: np.random.Generator, length: int | None = None) -> np.ndarray:
    """One reported trace (float64 dBm, NaN = missing sample) of the given scene."""
    if scene not in _BUILDERS:
        raise ValueError(f"unknown scene {scene!r}; known: {', '.join(SCENE_NAMES)}")
    n = length or int(np.exp(rng.uniform(np.log(MIN_CALL_S), np.log(MAX_CALL_S))))
    level, outage = _BUILDERS[scene](n, rng)
    return _report(level, outage, rng)
