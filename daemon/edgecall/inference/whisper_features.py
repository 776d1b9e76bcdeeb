"""Whisper's log-mel front end (16 kHz, 25 ms Hann window, 10 ms hop) in numpy.

The CTranslate2 runtime takes features, not audio, so the appliance computes them
itself: the same filters and scaling as OpenAI's `log_mel_spectrogram` (Slaney mel
scale, power spectrum, log10 floored 8 below the peak, then (x + 4) / 4).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filters(n_mels: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters (as librosa's defaults)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS: dict[int, np.ndarray] = {}
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic


def log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_s: float = 30.0) -> np.ndarray:
    """float32 audio at 16 kHz, zero-padded (or cut) to `pad_to_s` -> (n_mels, frames)."""
    samples = int(pad_to_s * SAMPLE_RATE)
    audio = np.pad(audio.astype(np.float32), (0, max(0, samples - audio.size)))[:samples]
    padded = np.pad(audio, N_FFT // 2, mode="reflect")  # centred frames, as torch.stft
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    filters = _FILTERS.get(n_mels)
    if filters is None:
        filters = _FILTERS[n_mels] = mel_filters(n_mels)
    log = np.log10(np.maximum(filters @ power.T.astype(np.float32), 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)
