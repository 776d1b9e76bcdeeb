"""Benchmark of the emotion models on this machine: load time, real-time factor, RSS.

    .venv/bin/python tests/bench/bench_emotion.py

Each thread setting runs in a fresh process so that RSS is that of a worker holding
only these models. RTF = processing time / audio duration for a 10 s utterance
(the analysis cap), median of 7 runs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATASETS = Path(os.environ.get("EDGECALL_DATASETS", REPO.parent / "shared" / "datasets"))


def rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure(backend: str, threads: int) -> dict:
    import numpy as np
    import soundfile as sf

    from edgecall.inference import emotion_features as ef

    rss_before, _ = rss_mb()
    t0 = time.perf_counter()
    from edgecall.inference.acoustic_emotion import AcousticEmotion

    model = AcousticEmotion(REPO / "models" / "emotion", threads=threads, backend=backend)
    load_s = time.perf_counter() - t0
    rss_loaded, _ = rss_mb()

    pieces, total = [], 0
    for path in sorted((DATASETS / "emodb" / "wav").glob("03*.wav")):
        audio, sr = sf.read(str(path), dtype="float32")
        pieces.append(ef.resample(audio, sr, 16000))
        total += len(pieces[-1])
        if total >= 160000:
            break
    x16 = np.concatenate(pieces)[:160000]
    cases = {
        "16k": ((x16 * 32767).astype(np.int16), 16000),
        "8k": ((ef.resample(x16, 16000, 8000) * 32767).astype(np.int16), 8000),
    }
    result = {
        "backend": backend,
        "threads": threads,
        "acoustic_load_s": load_s,
        "acoustic_rss_mb": rss_loaded - rss_before,
    }
    for name, (pcm, rate) in cases.items():
        times = []
        for _ in range(7):
            start = time.perf_counter()
            model.estimate(pcm, rate)
            times.append(time.perf_counter() - start)
        result[f"rtf_{name}"] = statistics.median(times) / 10.0
    feats = ef.extract(x16).vector
    start = time.perf_counter()
    for _ in range(200):
        model._run(feats)
    result["model_run_ms"] = (time.perf_counter() - start) / 200 * 1000

    t0 = time.perf_counter()
    from edgecall.inference.text_emotion import TextEmotion

    text = TextEmotion(REPO / "models" / "emotion", lexicon={"too expensive": -0.6, "太贵": -0.6})
    result["text_load_s"] = time.perf_counter() - t0
    for lang, sentence in (
        ("zh", "这个价格太贵了，我要考虑一下，你们有没有便宜一点的套餐"),
        ("en", "That's way too expensive, do you have a cheaper plan for me?"),
    ):
        start = time.perf_counter()
        for _ in range(200):
            text.estimate(sentence, lang)
        result[f"text_{lang}_ms"] = (time.perf_counter() - start) / 200 * 1000
    result["rss_total_mb"], result["rss_peak_mb"] = rss_mb()
    return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return
    rows = []
    for backend in ("onnx", "tflite"):
        for threads in (1, 2):
            out = subprocess.run(
                [sys.executable, __file__, "--child", backend, str(threads)],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"emotion models on {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}")
    header = (
        "backend",
        "threads",
        "acoustic load s",
        "RTF 16k",
        "RTF 8k",
        "model ms",
        "text load s",
        "zh ms",
        "en ms",
        "RSS MB",
        "peak MB",
    )
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(
            " | ".join(
                [
                    r["backend"],
                    str(r["threads"]),
                    f"{r['acoustic_load_s']:.3f}",
                    f"{r['rtf_16k']:.4f}",
                    f"{r['rtf_8k']:.4f}",
                    f"{r['model_run_ms']:.3f}",
                    f"{r['text_load_s']:.3f}",
                    f"{r['text_zh_ms']:.3f}",
                    f"{r['text_en_ms']:.3f}",
                    f"{r['rss_total_mb']:.0f}",
                    f"{r['rss_peak_mb']:.0f}",
                ]
            )
        )
    print(
        "RTF: seconds of processing per second of audio (10 s utterance, features + model); "
        "model ms: the network alone; RSS: whole process after loading the acoustic and "
        "text models and running them"
    )


if __name__ == "__main__":
    main()
