"""Measure a converted Whisper model the way the model card reports it.

    .venv/bin/python models/whisper/evaluate.py models/whisper-tiny-en [--write]

Runs in the runtime env (sherpa-onnx, edgecall). English: the sentences in
eval_sentences.txt spoken by espeak-ng (en-us) at 16 kHz and as 8 kHz G.711
mu-law band-limited to 300-3400 Hz, plus the English clips shipped in the
pytest-audioeval package when installed. Each recording goes through the
runtime path (silero VAD -> sherpa-onnx). `--write` stores the figures in the
manifest's "metrics" (file hashes are unaffected).
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


def sentences() -> list[str]:
    lines = (HERE / "eval_sentences.txt").read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith("#")]


def espeak(text: str, tmp: Path, telephone: bool) -> tuple[np.ndarray, int]:
    raw, out = tmp / "raw.wav", tmp / "out.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True)
    conv = (
        ["-r", "8000", "-e", "u-law", str(out), "sinc", "300-3400"]
        if telephone
        else ["-r", "16000", "-b", "16", str(out)]
    )
    subprocess.run(["sox", "-D", str(raw), "-c", "1", *conv], check=True)
    audio, rate = sf.read(str(out), dtype="float32")
    return audio, rate


def evaluate(model_dir: Path, languages: tuple[str, ...]) -> dict:
    rec = UtteranceRecognizer(model_dir, languages=languages)
    refs = sentences()
    metrics: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, phone in (("espeak_en_16k", False), ("espeak_en_8k_telephone", True)):
            hyps = []
            for text in refs:
                audio, rate = espeak(text, Path(tmp), phone)
                hyps.append(" ".join(u.text for u in rec.transcribe(audio, rate)))
            metrics[key] = {"wer": round(wer(refs, hyps), 4), "sentences": len(refs)}
            print(key, metrics[key])
            for r, h in zip(refs, hyps, strict=True):
                if r.lower().strip(".?!") != h.lower().strip(".?!"):
                    print(f"   ref: {r}\n   hyp: {h}")
    spec = find_spec("pytest_audioeval")
    if spec and spec.submodule_search_locations:
        clips = Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio" / "en"
        refs, hyps = [], []
        for wav in sorted(clips.glob("*.wav")):
            audio, rate = sf.read(str(wav), dtype="float32")
            refs.append(wav.with_suffix(".txt").read_text(encoding="utf-8").strip())
            hyps.append(" ".join(u.text for u in rec.transcribe(audio, rate)))
            print(f"   {refs[-1]} | {hyps[-1]}")
        metrics["pytest_audioeval_0.1.3_en"] = {
            "wer": round(wer(refs, hyps), 4),
            "cer": round(cer(refs, hyps), 4),
            "clips": len(refs),
        }
        print("pytest_audioeval en", metrics["pytest_audioeval_0.1.3_en"])
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description="WER of a converted Whisper model")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--languages", default="en", help="comma-separated, e.g. zh,en")
    parser.add_argument("--write", action="store_true", help="store figures in manifest.json")
    args = parser.parse_args()
    metrics = evaluate(args.model_dir, tuple(args.languages.split(",")))
    if args.write:
        path = args.model_dir / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["metrics"] = metrics
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
