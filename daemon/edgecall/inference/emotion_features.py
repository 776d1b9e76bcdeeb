"""Acoustic emotion features: one implementation for training and run time.

The acoustic emotion model (`models/emotion/`) is trained on these exact features and
the appliance computes them with this same module, so the two cannot drift apart.
numpy only, because the appliance has no scipy.

Features are utterance statistics at 16 kHz, restricted to the telephone band (the
mel filterbank spans 250-3600 Hz) so that wideband and 8 kHz callers look alike:
MFCC means/deviations, delta-MFCC deviations, energy dynamics and pitch (F0)
statistics from a normalised autocorrelation tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import gcd

import numpy as np

# Bump when anything below changes what the features mean: the model records the
# version it was trained with and the runtime refuses a mismatch.
FEATURE_VERSION = "2"
SAMPLE_RATE = 16000
FRAME = 400  # 25 ms analysis window
HOP = 160  # 10 ms hop
N_FFT = 512
N_MELS = 40
FMIN_HZ = 250.0
FMAX_HZ = 3600.0
N_MFCC = 20  # c0..c19; c0 (level) is left out of the statistics
N_DELTA = 12  # delta statistics for c1..c12
PITCH_FRAME = 640  # 40 ms: two periods of a 50 Hz voice
PITCH_FFT = 2048
F0_MIN_HZ = 60.0
F0_MAX_HZ = 450.0
VOICING_THRESHOLD = 0.45
ACTIVE_RANGE_DB = 30.0  # frames this far below the loud ones count as pauses
ACTIVE_FLOOR_DBFS = -55.0  # frames quieter than this are silence whatever the level

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"mfcc{i}_mean" for i in range(1, N_MFCC))
    + tuple(f"mfcc{i}_std" for i in range(1, N_MFCC))
    + tuple(f"dmfcc{i}_std" for i in range(1, N_DELTA + 1))
    + ("energy_std", "energy_range", "energy_delta", "energy_peak_to_median")
    + (
        "voiced_fraction",
        "f0_median_st",
        "f0_p10_st",
        "f0_p90_st",
        "f0_range_st",
        "f0_std_st",
        "f0_delta_st",
        "f0_slope_st_per_s",
        "voicing_strength",
    )
    + ("syllable_rate", "spectral_flux", "band_tilt")
)
N_FEATURES = len(FEATURE_NAMES)


class AudioInputError(ValueError):
    """The audio cannot be analysed as given (shape, dtype or sample rate)."""


@dataclass(frozen=True)
class UtteranceFeatures:
    vector: np.ndarray  # float32, shape (N_FEATURES,)
    duration_s: float
    active_s: float  # frames above the silence floor and near the utterance's loud part
    voiced_s: float  # active frames with a detected pitch


def to_float_mono(pcm: np.ndarray) -> np.ndarray:
    """int16/int32/float PCM, shape (n,) or (n, 1), as float32 in [-1, 1]; clips overshoot."""
    arr = np.asarray(pcm)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise AudioInputError(f"expected mono audio of shape (n,) or (n, 1), got {arr.shape}")
    if arr.dtype == np.int16:
        out = arr.astype(np.float32) / 32768.0
    elif arr.dtype == np.int32:
        out = (arr / 2147483648.0).astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise AudioInputError("audio contains NaN or infinite samples")
    else:
        raise AudioInputError(f"unsupported sample type {arr.dtype}; use int16, int32 or float")
    return np.clip(out, -1.0, 1.0)


def _taps(d: np.ndarray, fc: float, half_width: int) -> np.ndarray:
    window = 0.5 * (1.0 + np.cos(np.pi * np.clip(d / half_width, -1.0, 1.0)))
    return (2.0 * fc * np.sinc(2.0 * fc * d) * window).astype(np.float32)


@lru_cache(maxsize=16)
def _phase_table(up: int, down: int, half_taps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Filter taps for each of the `up` output phases of a rational up/down resampler."""
    scale = min(1.0, up / down)
    fc = 0.5 * scale * 0.94  # cutoff in cycles per input sample, a little below Nyquist
    half_width = int(np.ceil(half_taps / scale))
    offsets = np.arange(-half_width + 1, half_width + 1)
    d = np.arange(up)[:, None] / up - offsets[None, :]
    return _taps(d, fc, half_width), offsets, fc


def resample(x: np.ndarray, sr_in: int, sr_out: int, half_taps: int = 16) -> np.ndarray:
    """Band-limited (Hann-windowed sinc) resampling of float audio, in bounded chunks."""
    if sr_in <= 0 or sr_out <= 0:
        raise AudioInputError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x
    g = gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    n_out = len(x) * up // down
    polyphase = up <= 4096
    if polyphase:
        table, offsets, fc = _phase_table(up, down, half_taps)
    else:  # an odd rate pair: compute the taps per output sample instead of per phase
        scale = min(1.0, up / down)
        fc = 0.5 * scale * 0.94
        width = int(np.ceil(half_taps / scale))
        offsets = np.arange(-width + 1, width + 1)
    half_width = int(offsets[-1])
    padded = np.concatenate(
        [np.zeros(half_width, np.float32), x, np.zeros(half_width + 1, np.float32)]
    )
    out = np.empty(n_out, dtype=np.float32)
    chunk = max(1, 262144 // len(offsets))
    for start in range(0, n_out, chunk):
        m = np.arange(start, min(n_out, start + chunk), dtype=np.int64)
        base, phase = np.divmod(m * down, up)
        idx = base[:, None] + offsets[None, :] + half_width
        if polyphase:
            taps = table[phase]
        else:
            taps = _taps(phase[:, None] / up - offsets[None, :], fc, half_width)
        out[start : start + len(m)] = np.einsum("ij,ij->i", padded[idx], taps)
    return out


def _frames(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    if len(x) < length:
        x = np.pad(x, (0, length - len(x)))
    n = 1 + (len(x) - length) // hop
    return np.lib.stride_tricks.as_strided(
        x, shape=(n, length), strides=(x.strides[0] * hop, x.strides[0]), writeable=False
    )


def _mel_filterbank() -> np.ndarray:
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(
        np.linspace(hz_to_mel(np.array(FMIN_HZ)), hz_to_mel(np.array(FMAX_HZ)), N_MELS + 2)
    )
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    bank = np.zeros((N_MELS, len(freqs)))
    for i in range(N_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[i] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def _dct_matrix() -> np.ndarray:
    n = np.arange(N_MELS)
    k = np.arange(N_MFCC)[:, None]
    mat = np.cos(np.pi * k * (2 * n + 1) / (2 * N_MELS)) * np.sqrt(2.0 / N_MELS)
    mat[0] /= np.sqrt(2.0)
    return mat


_MEL = _mel_filterbank()
_DCT = _dct_matrix()
_HANN = np.hanning(FRAME + 2)[1:-1]
_PITCH_WIN = np.hanning(PITCH_FRAME + 2)[1:-1]
_WIN_AC = np.fft.irfft(np.abs(np.fft.rfft(_PITCH_WIN, PITCH_FFT)) ** 2)[:PITCH_FRAME]
_WIN_AC = _WIN_AC / _WIN_AC[0]
_LAG_MIN = int(SAMPLE_RATE / F0_MAX_HZ)
_LAG_MAX = int(SAMPLE_RATE / F0_MIN_HZ)


def _delta(m: np.ndarray, width: int = 2) -> np.ndarray:
    padded = np.pad(m, ((width, width), (0, 0)), mode="edge")
    num = sum(
        k * (padded[width + k : len(m) + width + k] - padded[width - k : len(m) + width - k])
        for k in range(1, width + 1)
    )
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def _pitch_semitones(x: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 per 10 ms frame in semitones re 100 Hz (NaN where unvoiced), and peak strength."""
    frames = _frames(np.pad(x, (PITCH_FRAME // 2 - FRAME // 2, PITCH_FRAME)), PITCH_FRAME, HOP)
    frames = frames[:n_frames]
    f0 = np.full(n_frames, np.nan)
    strength = np.zeros(n_frames)
    for start in range(0, n_frames, 256):  # chunks keep the FFT buffers small
        block = frames[start : start + 256]
        block = block - block.mean(axis=1, keepdims=True)
        spec = np.fft.rfft(block * _PITCH_WIN, PITCH_FFT, axis=1)
        ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, : _LAG_MAX + 2]
        energy = ac[:, :1]
        ok = energy[:, 0] > 1e-10
        norm = np.zeros_like(ac)
        norm[ok] = ac[ok] / energy[ok] / _WIN_AC[: _LAG_MAX + 2]
        # the first local peak close to the highest one, so that a period's multiples
        # (equally high for a steady voice) do not halve the pitch
        search = norm[:, _LAG_MIN - 1 : _LAG_MAX + 2]
        inner = search[:, 1:-1]
        best = inner.max(axis=1, keepdims=True)
        peaks = (inner > search[:, :-2]) & (inner >= search[:, 2:]) & (inner >= 0.85 * best)
        lag = np.where(peaks.any(axis=1), np.argmax(peaks, axis=1), np.argmax(inner, axis=1))
        lag = lag + _LAG_MIN
        peak = norm[np.arange(len(block)), lag]
        strength[start : start + len(block)] = peak
        voiced = ok & (peak > VOICING_THRESHOLD) & (lag > _LAG_MIN) & (lag < _LAG_MAX)
        rows = np.nonzero(voiced)[0]
        if len(rows):
            lv = lag[rows]
            left, mid, right = norm[rows, lv - 1], norm[rows, lv], norm[rows, lv + 1]
            denom = left - 2 * mid + right
            shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / denom, 0.0)
            freq = SAMPLE_RATE / (lv + np.clip(shift, -0.5, 0.5))
            f0[start + rows] = 12.0 * np.log2(freq / 100.0)
    return f0, strength


def _syllable_rate(energy_db: np.ndarray, active: np.ndarray) -> float:
    """Peaks of the 50 ms-smoothed energy contour (syllable nuclei) per active second."""
    smooth = np.convolve(energy_db, np.ones(5) / 5, mode="same")
    inner = smooth[1:-1]
    peaks = (inner > smooth[:-2]) & (inner >= smooth[2:]) & active[1:-1]
    peaks &= inner > np.median(smooth[active]) + 3.0
    return float(peaks.sum()) / max(1e-3, active.sum() * HOP / SAMPLE_RATE)


def extract(x: np.ndarray) -> UtteranceFeatures:
    """Features of one utterance: float mono audio at 16 kHz (use `resample` first)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean() if len(x) else x
    duration = len(x) / SAMPLE_RATE
    frames = _frames(x, FRAME, HOP)
    n = len(frames)
    power = np.abs(np.fft.rfft(frames * _HANN, N_FFT, axis=1)) ** 2
    logmel = np.log(power @ _MEL.T + 1e-10)
    mfcc = logmel @ _DCT.T
    energy_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.percentile(energy_db, 95)
    active = (energy_db > loud - ACTIVE_RANGE_DB) & (energy_db > ACTIVE_FLOOR_DBFS)
    f0, strength = _pitch_semitones(x, n)
    voiced = active & np.isfinite(f0)
    vec = np.zeros(N_FEATURES, dtype=np.float64)
    if active.sum() >= 3:
        m = mfcc[active]
        d = _delta(mfcc)[active]
        e = energy_db[active]
        vec[0 : N_MFCC - 1] = m[:, 1:].mean(axis=0)
        vec[N_MFCC - 1 : 2 * (N_MFCC - 1)] = m[:, 1:].std(axis=0)
        o = 2 * (N_MFCC - 1)
        vec[o : o + N_DELTA] = d[:, 1 : N_DELTA + 1].std(axis=0)
        o += N_DELTA
        p10, p50, p90 = np.percentile(e, [10, 50, 90])
        vec[o : o + 4] = (
            np.std(e),
            p90 - p10,
            np.mean(np.abs(np.diff(e))) if len(e) > 1 else 0.0,
            np.max(e) - p50,
        )
        o += 4
        vec[o] = voiced.sum() / active.sum()
        if voiced.sum() >= 3:
            st = f0[voiced]
            q10, q50, q90 = np.percentile(st, [10, 50, 90])
            steps = np.abs(np.diff(f0))
            steps = steps[np.isfinite(steps)]
            step = float(np.mean(np.minimum(steps, 3.0))) if len(steps) else 0.0
            t = np.nonzero(voiced)[0] * HOP / SAMPLE_RATE
            slope = float(np.polyfit(t, st, 1)[0]) if np.ptp(t) > 0 else 0.0
            vec[o + 1 : o + 9] = (
                q50,
                q10,
                q90,
                q90 - q10,
                np.std(st),
                step,
                np.clip(slope, -50.0, 50.0),
                np.mean(strength[voiced]),
            )
        o += 9
        flux = np.sqrt(np.mean(np.diff(logmel, axis=0) ** 2, axis=1))
        third = N_MELS // 3
        tilt = logmel[active, -third:].mean() - logmel[active, :third].mean()
        vec[o : o + 3] = (_syllable_rate(energy_db, active), float(np.mean(flux[active[1:]])), tilt)
    return UtteranceFeatures(
        vector=vec.astype(np.float32),
        duration_s=duration,
        active_s=float(active.sum()) * HOP / SAMPLE_RATE,
        voiced_s=float(voiced.sum()) * HOP / SAMPLE_RATE,
    )
