"""Whisper's log-mel front end (16 kHz, 25 ms window, 10 ms hop), for self-checks.

Only the converter's verification uses this; at run time sherpa-onnx computes
the features itself.
"""

from __future__ import annotations

import numpy as np
import torch

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


def log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_s: float = 30.0) -> np.ndarray:
    """float32 audio at 16 kHz -> (n_mels, frames) normalised log-mel."""
    samples = int(pad_to_s * SAMPLE_RATE)
    audio = np.pad(audio.astype(np.float32), (0, max(0, samples - audio.size)))[:samples]
    spec = torch.stft(
        torch.from_numpy(audio), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True
    )
    power = (spec[..., :-1].abs() ** 2).numpy()
    mel = mel_filters(n_mels) @ power
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)
