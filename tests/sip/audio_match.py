"""Compare what was heard with what was sent: normalised cross-correlation per window."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16000


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        assert w.getframerate() == RATE, (path, w.getframerate())
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def frames_to_signal(frames: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)


def best_lag(ref: np.ndarray, got: np.ndarray) -> int:
    """Offset of ref inside got maximising the cross-correlation (FFT based)."""
    n = len(ref) + len(got)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(0, len(got)), np.arange(-len(ref) + 1, 0)])
    values = np.concatenate([xc[: len(got)], xc[size - len(ref) + 1 :]])
    return int(lags[int(np.argmax(values))])


def window_correlations(
    ref: np.ndarray,
    got: np.ndarray,
    win_s: float = 0.1,
    slack_s: float = 0.03,
    min_rms: float = 300.0,
    resync_s: float = 0.5,
) -> list[float]:
    """For each voiced 100 ms window of ref, the best normalised correlation with got.

    The alignment starts from the global best lag and follows the audio: a window that
    matches moves it to where that window was found (within +-slack), so a frame the
    jitter buffer inserted or dropped costs the one window it falls in, not every
    window after it. A window that matches nowhere within the slack is looked for up to
    `resync_s` away, so a longer hole costs the windows it covers, no more.
    """
    lag = best_lag(ref, got)
    win, slack = int(win_s * RATE), int(slack_s * RATE)
    scores: list[float] = []
    for start in range(0, len(ref) - win + 1, win):
        r = ref[start : start + win]
        if np.sqrt(np.mean(r * r)) < min_rms:
            continue
        best, best_d = 0.0, 0
        for d in range(-slack, slack + 1):
            s = start + lag + d
            if s < 0 or s + win > len(got):
                continue
            g = got[s : s + win]
            denom = np.linalg.norm(r) * np.linalg.norm(g)
            if denom > 0:
                c = float(np.dot(r, g) / denom)
                if c > best:
                    best, best_d = c, d
        if best <= 0.9:  # a longer hole (a stalled media thread): find the audio again
            best, best_d = _search(r, got, start + lag, int(resync_s * RATE), best)
        scores.append(best)
        if best > 0.9:
            lag += best_d
    return scores


def _search(r: np.ndarray, got: np.ndarray, at: int, reach: int, best: float) -> tuple[float, int]:
    """The best normalised correlation of window `r` within `reach` samples of `at`, and
    its offset from `at`; (`best`, 0) when nothing there beats `best`."""
    lo, hi = max(0, at - reach), min(len(got), at + reach + len(r))
    if hi - lo < len(r):
        return best, 0
    offset = lo + best_lag(r, got[lo:hi]) - at
    s = at + offset
    if s < 0 or s + len(r) > len(got):
        return best, 0
    g = got[s : s + len(r)]
    denom = np.linalg.norm(r) * np.linalg.norm(g)
    c = float(np.dot(r, g) / denom) if denom > 0 else 0.0
    return (c, offset) if c > best else (best, 0)


def matches(scores: list[float], min_windows: int = 30) -> bool:
    """Audio is intact: nearly every voiced 100 ms window correlates > 0.9 with what was sent.

    On a loaded 2-core host a media thread scheduled late now and then empties pjmedia's
    jitter buffer, which conceals the hole with one 10-20 ms frame; the audio after it is
    intact but shifted, and the one window containing the shift scores lower (seen once
    or twice per 6 s of speech in CI). So at most one window in ten may be low; audio
    that is corrupted, resampled wrongly, byte-swapped or missing frames fails nearly all.
    """
    low = [s for s in scores if s <= 0.9]
    return len(scores) >= min_windows and len(low) <= len(scores) // 10
