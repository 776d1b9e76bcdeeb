"""ASR speed on this machine: load time, real-time factor and RSS at 1 and 2 threads.

Run: `.venv/bin/python -m tests.bench.bench_asr [--model DIR --language en|zh]`;
without --model it measures tiny.en on English and base on Chinese, each as sherpa-onnx
and as CTranslate2 runs it (the manifest's kind).
Each thread count runs in its own process, so RSS is that case alone. English
audio is the test sentences spoken by espeak-ng with 1 s pauses (about a
minute); Chinese audio is the real Mandarin/English clips of
../shared/datasets/zh-en-speech with 1 s pauses (about 46 s). Both run through
the full path (silero VAD -> Whisper), once at 16 kHz and once as
8 kHz G.711 telephone audio. Load time includes the sha256 check of every model
file. RTF = processing time / audio duration (lower is faster).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.harness.audio import convert_audio

REPO = Path(__file__).resolve().parents[2]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


ZH_EN_SPEECH = REPO.parent / "shared" / "datasets" / "zh-en-speech"
MODELS = REPO / "models"
DEFAULT_CASES = tuple(
    (MODELS / f"{name}{runtime}", language)
    for name, language in (("whisper-tiny-en", "en"), ("whisper-base", "zh"))
    for runtime in ("", "-ct2")  # sherpa-onnx, CTranslate2 (greedy)
)


def _recordings(language: str, tmp: Path) -> list[Path]:
    if language == "zh":
        return sorted(ZH_EN_SPEECH.glob("*.wav"))
    lines = (MODELS / "whisper" / "eval_sentences.txt").read_text().splitlines()
    out = []
    for i, text in enumerate(ln for ln in lines if ln.strip() and not ln.startswith("#")):
        out.append(tmp / f"en{i}.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(out[-1]), text], check=True)
    return out


def _speech(language: str, telephone: bool) -> tuple[np.ndarray, int]:
    rate = 8000 if telephone else 16000
    parts = [np.zeros(rate, dtype=np.float32)]
    with tempfile.TemporaryDirectory() as tmp:
        for raw in _recordings(language, Path(tmp)):
            out = convert_audio(raw, Path(tmp) / "out.wav", telephone)
            audio, _ = sf.read(str(out), dtype="float32")
            parts += [audio, np.zeros(rate, dtype=np.float32)]
    return np.concatenate(parts), rate


def run_case(model: Path, language: str, threads: int) -> dict:
    from edgecall.inference.asr import UtteranceRecognizer

    rss_before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    kind = json.loads((model / "manifest.json").read_text(encoding="utf-8"))["kind"]
    rec = UtteranceRecognizer(model, kind=kind, language=language, threads=threads)
    load_s = time.perf_counter() - t0
    rss_loaded = _status_mb("VmRSS")
    result = {"threads": threads, "load_s": load_s, "rss_model_mb": rss_loaded - rss_before}
    for key, telephone in (("16k", False), ("8k", True)):
        audio, rate = _speech(language, telephone)
        t0 = time.perf_counter()
        utts = rec.transcribe(audio, rate)
        result[f"rtf_{key}"] = (time.perf_counter() - t0) / (audio.size / rate)
        result[f"audio_s_{key}"] = audio.size / rate
        result[f"utterances_{key}"] = len(utts)
    result["rss_mb"] = _status_mb("VmRSS")
    result["peak_rss_mb"] = _status_mb("VmHWM")
    return result


def bench(model: Path, language: str) -> None:
    rows = []
    for threads in (1, 2):
        cmd = [sys.executable, "-m", "tests.bench.bench_asr", "--model", str(model)]
        cmd += ["--language", language, "--case", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    size_mb = sum(f.stat().st_size for f in model.iterdir() if f.is_file()) / 1e6
    print(
        f"model {model.name} ({size_mb:.1f} MB on disk), {language} audio "
        f"{rows[0]['audio_s_16k']:.0f} s"
    )
    head = "threads  load s  RTF 16k  RTF 8k  model RSS MB  RSS MB  peak RSS MB"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['threads']:>7}  {r['load_s']:>6.2f}  {r['rtf_16k']:>7.3f}  {r['rtf_8k']:>6.3f}"
            f"  {r['rss_model_mb']:>12.0f}  {r['rss_mb']:>6.0f}  {r['peak_rss_mb']:>11.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: both shipped)")
    parser.add_argument("--language", default="en", choices=("en", "zh"))
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.model, args.language, args.case)))
        return
    for model, language in [(args.model, args.language)] if args.model else DEFAULT_CASES:
        bench(model, language)
        print()


if __name__ == "__main__":
    main()
