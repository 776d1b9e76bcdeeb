"""Telephone-channel simulation for training and testing the acoustic emotion model.

Emo-DB is studio speech; callers reach the appliance over a narrowband trunk. Each
training utterance is also seen as it would arrive from the PBX: background noise at
a random SNR, the 300-3400 Hz telephone band, 8 kHz sampling, G.711 mu-law
companding (the real segmented codec, not the continuous curve) and back to 16 kHz.
numpy only, so tests can build the same channel without the training environment.
"""

from __future__ import annotations

import numpy as np

from edgecall.inference.emotion_features import SAMPLE_RATE, resample

PHONE_RATE = 8000
BAND_HZ = (300.0, 3400.0)
_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635
EVAL_SEED = 20261121


def band_pass(x: np.ndarray, sr: int, lo: float = BAND_HZ[0], hi: float = BAND_HZ[1]) -> np.ndarray:
    """Zero-phase band-pass with 100 Hz raised-cosine edges, applied in the frequency domain."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    edge = 100.0
    gain = np.clip((f - (lo - edge / 2)) / edge, 0, 1) * np.clip(((hi + edge / 2) - f) / edge, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, len(x)).astype(np.float32)


def mulaw_encode(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law: float [-1, 1] to 8-bit codes (segment + mantissa, bits inverted)."""
    s = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int32)
    sign = (s < 0).astype(np.int32)
    mag = np.minimum(np.abs(s), _MULAW_CLIP) + _MULAW_BIAS
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~((sign << 7) | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def mulaw_decode(code: np.ndarray) -> np.ndarray:
    c = (~code.astype(np.int32)) & 0xFF
    sign, exponent, mantissa = c >> 7, (c >> 4) & 0x07, c & 0x0F
    mag = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return (np.where(sign == 1, -mag, mag) / 32768.0).astype(np.float32)


def coloured_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit power."""
    white = rng.standard_normal(n)
    if kind != "white":
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spec /= np.sqrt(f) if kind == "pink" else f
        white = np.fft.irfft(spec, n)
    return (white / (np.std(white) + 1e-12)).astype(np.float32)


def telephone(
    x: np.ndarray, rng: np.random.Generator, snr_db: float | None, noise: str = "pink"
) -> np.ndarray:
    """16 kHz float speech as received over a G.711 trunk, returned at 16 kHz."""
    x = np.asarray(x, dtype=np.float32)
    level = float(np.sqrt(np.mean(x**2)) + 1e-9)
    x = x * (10 ** (rng.uniform(-26.0, -12.0) / 20.0) / level)  # speech at -26..-12 dBFS
    if snr_db is not None:
        speech_power = np.mean(x**2)
        x = x + coloured_noise(len(x), noise, rng) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    x = band_pass(x, SAMPLE_RATE)
    narrow = resample(x, SAMPLE_RATE, PHONE_RATE)
    narrow = mulaw_decode(mulaw_encode(narrow))
    return resample(narrow, PHONE_RATE, SAMPLE_RATE)


def random_telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random channel: 20% without noise, else white/pink/brown noise at 5-30 dB SNR."""
    if rng.random() < 0.2:
        return telephone(x, rng, None)
    kind = ("white", "pink", "brown")[int(rng.integers(3))]
    return telephone(x, rng, float(rng.uniform(5.0, 30.0)), kind)


def eval_channel(x: np.ndarray, index: int) -> np.ndarray:
    """The fixed evaluation channel of utterance `index` (same in training report and tests)."""
    rng = np.random.default_rng([EVAL_SEED, 1, index])
    kind = ("white", "pink", "brown")[index % 3]
    return telephone(x, rng, float(rng.uniform(10.0, 30.0)), kind)
