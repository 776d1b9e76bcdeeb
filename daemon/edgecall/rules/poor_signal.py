"""Real-time poor signal: a sliding window over the per-second quality (section 4).

A sample strictly below `min_quality_dbm` is poor; a missing sample (None) is
not counted as poor, because silence from a quality source is not evidence of
bad signal, but it still occupies its second in the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from edgecall.config.rules import PoorSignalRuleConfig


@dataclass(frozen=True)
class PoorSignal:
    samples: tuple[float | None, ...]  # the window when the rule fired, oldest first
    poor: int


def is_poor(sample: float | None, cfg: PoorSignalRuleConfig) -> bool:
    return sample is not None and sample < cfg.min_quality_dbm


class PoorSignalWindow:
    def __init__(self, cfg: PoorSignalRuleConfig) -> None:
        self._cfg = cfg
        self._window: deque[float | None] = deque(maxlen=cfg.window_samples)

    def push(self, sample: float | None) -> PoorSignal | None:
        """Add one sample; returns the firing window when the rule fires."""
        self._window.append(sample)
        if not self._cfg.enabled:
            return None
        poor = sum(is_poor(s, self._cfg) for s in self._window)
        if poor >= self._cfg.min_poor_samples:
            return PoorSignal(tuple(self._window), poor)
        return None


def first_trigger(samples: Iterable[float | None], cfg: PoorSignalRuleConfig) -> int | None:
    """Index of the sample at which the rule first fires, or None."""
    window = PoorSignalWindow(cfg)
    for i, s in enumerate(samples):
        if window.push(s):
            return i
    return None
