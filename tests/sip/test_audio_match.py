"""The audio comparison itself: it must pass a jitter-buffer slip and fail real damage."""

import numpy as np

from tests.sip.audio_match import RATE, matches, window_correlations


def speech_like(seconds: float = 6.0, seed: int = 1) -> np.ndarray:
    """Noise shaped into 0.3 s syllables with short pauses, at speech level."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    envelope = (np.sin(2 * np.pi * t / 0.4) > -0.3).astype(float)
    return 3000.0 * rng.standard_normal(n) * envelope


def test_a_concealed_frame_costs_one_window_only():
    ref = speech_like()
    cut = int(2.05 * RATE)
    concealed = np.zeros(320)  # one 20 ms frame inserted by the jitter buffer
    got = np.concatenate([np.zeros(4000), ref[:cut], concealed, ref[cut:], np.zeros(800)])
    scores = window_correlations(ref, got)
    assert sum(s <= 0.9 for s in scores) <= 1
    assert matches(scores)


def test_a_second_slip_later_is_followed_too():
    ref = speech_like()
    a, b = int(1.55 * RATE), int(4.25 * RATE)
    got = np.concatenate([ref[:a], np.zeros(320), ref[a:b], ref[b + 160 :]])
    assert matches(window_correlations(ref, got))


def test_a_hole_longer_than_the_slack_costs_only_the_windows_it_covers():
    """A media thread stalled for 120 ms: the jitter buffer fills the hole with silence."""
    ref = speech_like()
    cut = int(2.05 * RATE)
    got = np.concatenate([ref[:cut], np.zeros(int(0.12 * RATE)), ref[cut:]])
    scores = window_correlations(ref, got)
    assert sum(s <= 0.9 for s in scores) <= 2
    assert matches(scores)


def test_damaged_audio_fails():
    ref = speech_like()
    rng = np.random.default_rng(7)
    noisy = ref + 6000.0 * rng.standard_normal(len(ref))
    every_other_frame_lost = ref.copy().reshape(-1, 320)
    every_other_frame_lost[::2] = 0.0
    resampled = np.interp(np.arange(0, len(ref), 1.01), np.arange(len(ref)), ref)
    swapped = ref.astype("<i2").byteswap().astype(np.float64)
    for damaged in (noisy, every_other_frame_lost.ravel(), resampled, swapped):
        assert not matches(window_correlations(ref, damaged))


def test_too_little_speech_is_not_called_intact():
    ref = speech_like(seconds=1.0)
    assert not matches(window_correlations(ref, ref))
