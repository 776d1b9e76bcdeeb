"""Measure a converted Whisper model the way the model card reports it.

    .venv/bin/python models/whisper/evaluate.py models/whisper-base --languages zh,en [--write]
    .venv/bin/python models/whisper/evaluate.py models/whisper-base-ct2 --languages zh,en \
        --beam-size 5 [--write]

Runs in the runtime env (sherpa-onnx, ctranslate2, edgecall); every recording goes
through the runtime path (silero VAD -> the manifest's kind of model, sherpa-onnx
`whisper` or CTranslate2 `whisper_ct2`, the call's language forced).
English: the sentences in eval_sentences.txt spoken by espeak-ng (en-us) at
16 kHz and as 8 kHz G.711 mu-law band-limited to 300-3400 Hz, plus the English
clips of pytest-audioeval. Chinese: the real Mandarin/English code-switching
speech in ../shared/datasets/zh-en-speech (references in
zh_en_speech_references.json, with their provenance) as recorded and as the
same telephone band, plus the Chinese clips of pytest-audioeval. `--write`
stores the figures in the manifest's "metrics" ("metrics_beamN" for a CT2 beam
search of N; file hashes are unaffected).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import soundfile as sf

from edgecall.inference.asr import UtteranceRecognizer
from edgecall.inference.asr_metrics import cer, wer

HERE = Path(__file__).resolve().parent
ZH_EN_SPEECH = HERE.parents[2] / "shared" / "datasets" / "zh-en-speech"
TELEPHONE = ["-r", "8000", "-e", "u-law"]  # then: OUT sinc 300-3400


def sentences() -> list[str]:
    lines = (HERE / "eval_sentences.txt").read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith("#")]


def zh_en_references() -> dict[str, str]:
    data = json.loads((HERE / "zh_en_speech_references.json").read_text(encoding="utf-8"))
    return data["references"]


def telephone_band(wav: Path, out: Path) -> tuple[np.ndarray, int]:
    """8 kHz G.711 mu-law, 300-3400 Hz: what a PSTN trunk delivers."""
    subprocess.run(
        ["sox", "-D", str(wav), "-c", "1", *TELEPHONE, str(out), "sinc", "300-3400"], check=True
    )
    audio, rate = sf.read(str(out), dtype="float32")
    return audio, rate


def espeak(text: str, tmp: Path, telephone: bool) -> tuple[np.ndarray, int]:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True)
    if telephone:
        return telephone_band(raw, out)
    subprocess.run(
        ["sox", "-D", str(raw), "-c", "1", "-r", "16000", "-b", "16", str(out)], check=True
    )
    audio, rate = sf.read(str(out), dtype="float32")
    return audio, rate


def audioeval_clips(language: str) -> list[Path]:
    spec = find_spec("pytest_audioeval")
    if not (spec and spec.submodule_search_locations):
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio" / language
    return sorted(root.glob("*.wav"))


def _text(rec: UtteranceRecognizer, audio: np.ndarray, rate: int) -> str:
    return " ".join(u.text for u in rec.transcribe(audio, rate))


def _show(refs: list[str], hyps: list[str], only_errors: bool = False) -> None:
    for r, h in zip(refs, hyps, strict=True):
        if not only_errors or r.lower().strip(".?!") != h.lower().strip(".?!"):
            print(f"   ref: {r}\n   hyp: {h}")


def audioeval_metrics(rec: UtteranceRecognizer, language: str) -> dict:
    """Error rates on the pytest-audioeval clips of `language` (empty if not installed)."""
    clips = audioeval_clips(language)
    if not clips:
        return {}
    refs = [c.with_suffix(".txt").read_text(encoding="utf-8").strip() for c in clips]
    hyps = [_text(rec, *sf.read(str(c), dtype="float32")) for c in clips]
    _show(refs, hyps)
    figures = {"cer": round(cer(refs, hyps), 4), "clips": len(refs)}
    if language == "en":  # words only make sense where spaces separate them
        figures = {"wer": round(wer(refs, hyps), 4)} | figures
    print(f"pytest_audioeval {language}", figures)
    return {f"pytest_audioeval_0.1.3_{language}": figures}


def recognizer(model_dir: Path, language: str, beam_size: int) -> UtteranceRecognizer:
    """The model as the daemon runs it: the kind its manifest names."""
    kind = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))["kind"]
    return UtteranceRecognizer(model_dir, kind=kind, language=language, beam_size=beam_size)


def evaluate_english(model_dir: Path, beam_size: int) -> dict:
    rec = recognizer(model_dir, "en", beam_size)
    refs = sentences()
    metrics: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, phone in (("espeak_en_16k", False), ("espeak_en_8k_telephone", True)):
            hyps = [_text(rec, *espeak(text, Path(tmp), phone)) for text in refs]
            metrics[key] = {"wer": round(wer(refs, hyps), 4), "sentences": len(refs)}
            print(key, metrics[key])
            _show(refs, hyps, only_errors=True)
    return metrics | audioeval_metrics(rec, "en")


def evaluate_chinese(model_dir: Path, beam_size: int) -> dict:
    rec = recognizer(model_dir, "zh", beam_size)
    metrics: dict = {}
    references = zh_en_references()
    refs = list(references.values())
    with tempfile.TemporaryDirectory() as tmp:
        for key, phone in (("zh_en_speech", False), ("zh_en_speech_8k_telephone", True)):
            hyps = []
            for name in references:
                wav = ZH_EN_SPEECH / name
                audio = telephone_band(wav, Path(tmp) / name) if phone else sf.read(str(wav))
                hyps.append(_text(rec, *audio))
            _show(refs, hyps)
            metrics[key] = {"cer": round(cer(refs, hyps), 4), "clips": len(refs)}
            print(key, metrics[key])
    return metrics | audioeval_metrics(rec, "zh")


def evaluate(model_dir: Path, languages: tuple[str, ...], beam_size: int) -> dict:
    metrics: dict = {}
    if "en" in languages:
        metrics |= evaluate_english(model_dir, beam_size)
    if "zh" in languages:
        metrics |= evaluate_chinese(model_dir, beam_size)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description="WER and CER of a converted Whisper model")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--languages", default="en", help="comma-separated, e.g. zh,en")
    parser.add_argument("--beam-size", type=int, default=1, help="whisper_ct2 only; 1: greedy")
    parser.add_argument("--write", action="store_true", help="store figures in manifest.json")
    args = parser.parse_args()
    metrics = evaluate(args.model_dir, tuple(args.languages.split(",")), args.beam_size)
    if args.write:
        path = args.model_dir / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["metrics" if args.beam_size == 1 else f"metrics_beam{args.beam_size}"] = metrics
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
