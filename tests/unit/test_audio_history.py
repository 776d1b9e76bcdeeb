"""The analysis worker's per-call audio history: what the acoustic model hears."""

from __future__ import annotations

import numpy as np

from edgecall.inference.handlers import AudioHistory


def ramp(lo: int, hi: int) -> np.ndarray:
    return (np.arange(lo, hi) % 30000).astype(np.int16)


def test_chunks_appended_read_back_by_call_sample_index_across_shifts():
    history, fed = AudioHistory(keep=1000), 0
    for size in [160] * 40 + [999, 1, 640]:
        history.append(ramp(fed, fed + size))
        fed += size
        # the last `keep` samples are always there, exactly
        lo = max(0, fed - 1000)
        assert np.array_equal(history.between(lo, fed), ramp(lo, fed))
    assert history.start > 0  # it did shift
    assert np.array_equal(history.between(fed - 300, fed - 100), ramp(fed - 300, fed - 100))


def test_audio_older_than_the_history_is_cut_off_or_empty():
    history = AudioHistory(keep=100)
    for i in range(10):
        history.append(ramp(i * 80, (i + 1) * 80))
    start = history.start
    assert np.array_equal(history.between(0, start + 10), ramp(start, start + 10))
    assert history.between(0, start).size == 0
    assert history.between(900, 850).size == 0


def test_a_chunk_longer_than_the_history_is_kept_whole():
    history = AudioHistory(keep=100)
    history.append(ramp(0, 50))
    history.append(ramp(50, 450))
    assert np.array_equal(history.between(50, 450), ramp(50, 450))
