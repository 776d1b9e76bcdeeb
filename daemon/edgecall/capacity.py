"""How many analysed calls this box carries: what `auto` means for the worker count and
`sip.max_concurrent_calls`.

The figures are the benchmark's (tests/bench/bench_daemon.py, README "Capacity"): on a
2-core x86 box with one analysis worker per core, 8 English calls (tiny.en) kept the
caller-stops -> reply first-audio p95 at 0.80 s (target 1.0 s) and 4 Mandarin calls
(whisper-base, about twice the CPU per call) within 1.5 s; at 16 English or 8 Mandarin
calls the p95 was 1.6 s and 2.9 s (measured with a cheaper tiny.en padding since
reverted: English decoding now costs about a fifth more). More calls than the box
analyses in time are refused with 486 (and the dialer waits) rather than answered late.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

#: Analysed calls per core (per analysis worker on its own core), by language.
CALLS_PER_CORE = {"en": 4, "zh": 2}
MAX_WORKERS = 4


def cores() -> int:
    """CPUs this process may run on (the systemd unit or a container may allow fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def analysis_workers() -> int:
    """One inference worker per core, at most MAX_WORKERS (each holds its own models)."""
    return max(1, min(MAX_WORKERS, cores()))


def analysed_calls(workers: int, languages: Iterable[str], ceiling: int) -> int:
    """Calls the box analyses at once: per core of the costliest language in use, on the
    cores the workers can use, at most `ceiling` (the SIP stack's limit)."""
    per_core = min(
        (CALLS_PER_CORE.get(lang, min(CALLS_PER_CORE.values())) for lang in languages),
        default=min(CALLS_PER_CORE.values()),
    )
    return max(1, min(ceiling, per_core * min(workers, cores())))
