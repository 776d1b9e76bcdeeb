"""Benchmark: where an analysed call's CPU goes, stage by stage (issue 14, part 2).

The analysis worker's own handler (`CallAnalysisHandler`, shipped config and models) runs in
this process, fed N calls' caller audio in the daemon's chunks (40 ms while the caller
talks and for 1.5 s after, 100 ms otherwise), the calls interleaved chunk by chunk as a
worker sees them. The audio is bench_daemon's caller (English: questions about the product
said by espeak-ng with 3 s pauses, a talk ratio of about 40 %; Chinese: the zh-en-speech
clips), each call starting at a different point of it. Nothing waits for real time: the
figures are CPU seconds per second of call audio, i.e. the share of one core a call costs.

Each stage is timed with the CPU clock of the thread that runs it (`time.thread_time`; the
models run with one intra-op thread, in the calling thread; CTranslate2 decodes on a worker
thread of its own, so the ASR stage also counts the CPU of the threads Python did not
start, from /proc/self/task): the VAD (silero, every 32 ms
window), ASR decoding (whisper, once per utterance, at the pause judge or the turn's end),
the end-of-turn model (smart-turn, once per judged pause, on the judge's second thread),
acoustic and text emotion (once per utterance). 'other' is the process's CPU time minus the
stages: the endpointer, resampling, buffer copies, Python glue. The daemon adds per call
what this bench cannot see: the pipe round trip of every chunk (bench_inference_worker),
the SIP media and the call's asyncio tasks (bench_sip, bench_daemon).

Run from the repository root:
  .venv/bin/python -m tests.bench.bench_analysis [--language en|zh] [--calls 1,8]
      [--seconds 60] [--asr config|sherpa-onnx|ct2|ct2-beam5]
"""

# ruff: noqa: E402 - the BLAS setting below must come before numpy is imported
from __future__ import annotations

import os

# One BLAS thread, as the daemon's workers have (edgecall/__init__.py says why).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import functools
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from edgecall.inference import acoustic_emotion, asr, handlers, text_emotion, turn
from edgecall.inference.settings import InferenceConfig
from tests.bench.bench_asr_runtime import ASR_CHOICES, with_runtime
from tests.bench.bench_daemon import caller_wav

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
FRAME = RATE // 50  # 20 ms
CHUNK_TALKING, CHUNK_QUIET = 2, 5  # frames, as edgecall.calls
TALKING_S = 1.5
SOUND_RMS = 300.0  # edgecall.calls: a chunk louder than this is the caller's sound

# (module attribute holding the class, method) -> stage name
STAGES = {
    (asr.SileroVad, "__call__"): "VAD",
    (asr.UtteranceRecognizer, "_recognise"): "ASR decoding",
    (turn.TurnDetector, "probability"): "end-of-turn model",
    (acoustic_emotion.AcousticEmotion, "estimate"): "acoustic emotion",
    (text_emotion.TextEmotion, "estimate"): "text emotion",
}


NATIVE_THREADS_STAGE = "ASR decoding"  # CTranslate2's own threads are counted here


def native_threads_cpu() -> float:
    """CPU seconds of this process's threads that Python did not start (runtimes' pools)."""
    python = {t.native_id for t in threading.enumerate()}
    total = 0
    for task in Path("/proc/self/task").iterdir():
        if int(task.name) not in python:
            with contextlib.suppress(OSError, ValueError):  # the thread ended meanwhile
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


class StageClock:
    """CPU seconds and calls per stage, from wrappers around the stage methods."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []

    def install(self) -> None:
        for (cls, name), stage in STAGES.items():
            original = getattr(cls, name)
            setattr(cls, name, self._timed(original, stage))
            self._undo.append(lambda cls=cls, name=name, f=original: setattr(cls, name, f))

    def _timed(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        clock = native_threads_cpu if stage == NATIVE_THREADS_STAGE else lambda: 0.0

        @functools.wraps(fn)
        def timed(*args: Any, **kw: Any) -> Any:
            start, native = time.thread_time(), clock()
            try:
                return fn(*args, **kw)
            finally:
                self.cpu[stage] += time.thread_time() - start + clock() - native
                self.calls[stage] += 1

        return timed

    def remove(self) -> None:
        for undo in self._undo:
            undo()


def chunks(pcm: np.ndarray, offset: int) -> list[np.ndarray]:
    """The caller's audio from `offset` on (wrapping round), cut as the daemon cuts it."""
    pcm = np.roll(pcm, -offset)
    out, i, last_sound = [], 0, -1e9
    while i + FRAME <= pcm.size:
        t = i / RATE
        n = CHUNK_TALKING if t - last_sound < TALKING_S else CHUNK_QUIET
        chunk = pcm[i : i + n * FRAME]
        if np.sqrt(np.mean(chunk.astype(np.float32) ** 2)) > SOUND_RMS:
            last_sound = t
        out.append(chunk)
        i += chunk.size
    return out


def run(language: str, calls: int, seconds: float, handler: Any) -> dict[str, Any]:
    """Feed `calls` calls of `seconds` each; the stage clock, CPU time and utterances."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, _, _ = caller_wav(Path(tmp), language)
        audio, rate = soundfile.read(wav, dtype="int16")
    assert rate == RATE
    reps = int(np.ceil(seconds * RATE / audio.size))
    pcm = np.tile(audio, reps)[: int(seconds * RATE)]
    feeds = [chunks(pcm, k * pcm.size // calls) for k in range(calls)]
    clock = StageClock()
    clock.install()
    utterances = 0
    try:
        start = time.process_time()
        for step in range(max(len(f) for f in feeds)):
            for k, feed in enumerate(feeds):
                if step < len(feed):
                    utterances += len(handler.feed(f"call-{k}", language, feed[step]))
        for k in range(calls):
            utterances += len(handler.flush(f"call-{k}", language))
        total = time.process_time() - start
    finally:
        clock.remove()
    chunk_count = sum(len(f) for f in feeds)
    return {
        "calls": calls,
        "audio_s": calls * seconds,
        "cpu_s": total,
        "stages": dict(clock.cpu),
        "counts": dict(clock.calls),
        "utterances": utterances,
        "chunks": chunk_count,
    }


def report(language: str, runs: list[dict[str, Any]], asr: str) -> None:
    print(
        f"\n### Analysis CPU per call, by stage ({language}, ASR runtime: {asr}; "
        "ms of CPU per second of audio)\n"
    )
    names = list(STAGES.values()) + ["other", "total"]
    print("| calls | " + " | ".join(names) + " | calls per core (CPU) |")
    print("|---|" + "---|" * (len(names) + 1))
    for r in runs:
        per_s = {k: 1000 * v / r["audio_s"] for k, v in r["stages"].items()}
        per_s["other"] = 1000 * r["cpu_s"] / r["audio_s"] - sum(per_s.values())
        per_s["total"] = 1000 * r["cpu_s"] / r["audio_s"]
        cells = [f"{per_s.get(n, 0.0):.1f}" for n in names]
        print(f"| {r['calls']} | " + " | ".join(cells) + f" | {1000 / per_s['total']:.0f} |")
    print("\n| calls | audio s | utterances | chunks | " + " | ".join(STAGES.values()) + " |")
    print("|---|---|---|---|" + "---|" * len(STAGES))
    for r in runs:
        counts = [str(r["counts"].get(n, 0)) for n in STAGES.values()]
        print(
            f"| {r['calls']} | {r['audio_s']:.0f} | {r['utterances']} | {r['chunks']} | "
            + " | ".join(counts)
            + " |"
        )
    print(
        "\nSecond table: how many times each stage ran. 'calls per core' = 1000 / total, "
        "the analysis alone; the worker's pipe, the daemon and SIP come on top."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--language", choices=["en", "zh"], default="en")
    ap.add_argument("--calls", default="1,8", help="calls fed at once, comma-separated")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per call")
    ap.add_argument(
        "--asr", choices=ASR_CHOICES, default="config", help="Whisper runtime of every ASR model"
    )
    args = ap.parse_args()
    cfg = with_runtime(load_model(REPO / "config.yaml", EdgecallConfig), args.asr)
    handler = handlers.CallAnalysisHandler()
    handler.load(InferenceConfig.from_config(cfg, REPO))
    runs = []
    for n in [int(x) for x in args.calls.split(",")]:
        handler.feed("warm-up", args.language, np.zeros(RATE, np.int16))  # loads the models
        handler.flush("warm-up", args.language)
        runs.append(run(args.language, n, args.seconds, handler))
    report(args.language, runs, args.asr)


if __name__ == "__main__":
    main()
