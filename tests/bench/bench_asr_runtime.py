"""Benchmark: the two Whisper runtimes side by side (issue 15 step 2, issue 14).

sherpa-onnx on our int8 ONNX conversions against CTranslate2 on the pinned CT2 files
(int8, greedy and beam 5), the same weights, on the same clips through the same live
path (silero VAD, the endpointer, the speech pads: `UtteranceRecognizer`), one intra-op
thread each. Sets, every clip through the G.711 mu-law channel and back to 16 kHz
(bench_hearing.through_channel), with bench_hearing's silence around it:
- en-espeak: models/whisper/eval_sentences.txt said by espeak-ng (tiny.en);
- en-piper: tests/data/hearing/en.txt said by the box's Piper voice (tiny.en);
- zh-en-speech: the real Mandarin/English recordings (base).
Figures: WER (English) or CER (Mandarin) with edgecall.inference.asr_metrics, and CPU ms
spent decoding per second of utterance audio (the decoder's own calls, on this process's
clock; the VAD is the same for both and left out).

`with_runtime` is how bench_hearing and bench_analysis take `--asr`.

Run from the repository root:
  .venv/bin/python -m tests.bench.bench_asr_runtime [--sets en-espeak,en-piper,zh-en-speech]
"""

# ruff: noqa: E402 - the BLAS setting below must come before numpy is imported
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the workers (edgecall/__init__.py)

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecall.config.loader import load_model
from edgecall.config.models import AsrModelConfig
from edgecall.config.root import EdgecallConfig
from edgecall.inference.asr import UtteranceRecognizer, load_engine
from edgecall.inference.asr_metrics import cer, wer

REPO = Path(__file__).resolve().parents[2]
# name -> (kind, model directory suffix, beam size); "config" keeps config.yaml's choice
RUNTIMES = {
    "sherpa-onnx": ("whisper", "", 1),
    "ct2": ("whisper_ct2", "-ct2", 1),
    "ct2-beam5": ("whisper_ct2", "-ct2", 5),
}
ASR_CHOICES = ["config", *RUNTIMES]


def runtime_asr(asr: AsrModelConfig, runtime: str) -> AsrModelConfig:
    """The same Whisper weights of `asr` under another runtime."""
    kind, suffix, beam = RUNTIMES[runtime]
    name = asr.dir.name.removesuffix("-ct2") + suffix
    return asr.model_copy(update={"kind": kind, "dir": asr.dir.with_name(name), "beam_size": beam})


def with_runtime(cfg: EdgecallConfig, runtime: str) -> EdgecallConfig:
    """`cfg` with every ASR model run by `runtime` (one of ASR_CHOICES)."""
    if runtime == "config":
        return cfg
    asr = [runtime_asr(a, runtime) for a in cfg.models.asr]
    return cfg.model_copy(update={"models": cfg.models.model_copy(update={"asr": asr})})


class TimedModel:
    """An utterance model, its decoding CPU and the utterance audio it was given counted."""

    def __init__(self, model) -> None:
        self.model, self.cpu_s, self.audio_s = model, 0.0, 0.0

    def transcribe(self, samples: np.ndarray) -> str:
        start = time.process_time()
        try:
            return self.model.transcribe(samples)
        finally:
            self.cpu_s += time.process_time() - start
            self.audio_s += samples.size / 16000


def espeak_set(tmp: Path) -> list[tuple[str, np.ndarray]]:
    """The sentences at espeak-ng's own speed, converted without dither (-D): the same audio
    every run."""
    from tests.bench.bench_hearing import RATE, through_channel

    lines = (REPO / "models" / "whisper" / "eval_sentences.txt").read_text().splitlines()
    wav, raw = tmp / "espeak.wav", tmp / "espeak.raw"
    out = []
    for text in (ln for ln in lines if ln.strip() and not ln.startswith("#")):
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
        subprocess.run(
            ["sox", "-D", str(wav), "-r", str(RATE), "-c", "1", "-b", "16", "-t", "raw", str(raw)],
            check=True,
        )
        out.append((text, through_channel(raw.read_bytes(), tmp)))
    return out


def clip_sets(cfg: EdgecallConfig, names: list[str], tmp: Path) -> dict:
    from tests.bench.bench_hearing import recorded_set, voiced_set

    build = {
        "en-espeak": ("en", lambda: espeak_set(tmp)),
        "en-piper": ("en", lambda: voiced_set(cfg, "en", tmp)),
        "zh-en-speech": ("zh", lambda: recorded_set(tmp)),
    }
    return {name: (build[name][0], build[name][1]()) for name in names}


def measure(cfg: EdgecallConfig, runtime: str, language: str, clips) -> tuple[float, float]:
    """(error rate, decoding CPU ms per s of utterance audio) of `runtime` on `clips`."""
    from tests.bench.bench_hearing import LEAD_S, RATE, TAIL_S

    models = cfg.models
    asr = runtime_asr(next(a for a in models.asr if language in a.languages), runtime)
    model_dir = asr.dir if asr.dir.is_absolute() else REPO / models.dir / asr.dir
    engine = TimedModel(
        load_engine(model_dir, kind=asr.kind, language=language, beam_size=asr.beam_size)
    )
    hyps = []
    for _, pcm in clips:
        rec = UtteranceRecognizer(
            model_dir, kind=asr.kind, language=language, vad=models.vad, engine=engine
        )
        quiet = lambda s: np.zeros(int(s * RATE), np.int16)  # noqa: E731
        heard = rec.transcribe(np.concatenate([quiet(LEAD_S), pcm, quiet(TAIL_S)]))
        hyps.append(" ".join(u.text for u in heard))
    refs = [text for text, _ in clips]
    error = cer(refs, hyps) if language == "zh" else wer(refs, hyps)
    return error, 1000 * engine.cpu_s / engine.audio_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="en-espeak,en-piper,zh-en-speech")
    args = ap.parse_args()
    cfg = load_model(REPO / "config.yaml", EdgecallConfig)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-asr-runtime-") as tmp:
        for name, (language, clips) in clip_sets(cfg, args.sets.split(","), Path(tmp)).items():
            cells = []
            for runtime in RUNTIMES:
                error, ms = measure(cfg, runtime, language, clips)
                cells.append(f"{100 * error:.1f} %, {ms:.0f}")
            metric = "CER" if language == "zh" else "WER"
            rows.append(f"| {name} ({metric}) | {len(clips)} | " + " | ".join(cells) + " |")
    print("### Whisper runtimes: error rate, decoding CPU ms per s of utterance audio\n")
    print("(G.711 mu-law channel, one thread, the live VAD path)\n")
    print("| set | clips | " + " | ".join(RUNTIMES) + " |")
    print("|---|---|" + "---|" * len(RUNTIMES))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
