"""Scene CNN speed on this machine: load time, per-trace latency and RSS per backend.

Run: `.venv/bin/python tests/bench/bench_scene.py [--traces 300]`. Each
(backend, threads) case runs in its own process, so RSS is that case alone.
Load time includes the sha256 check of the model file; latency is one
`classify()` call (feature preparation + inference) on generated traces of
20-300 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENE_DIR = REPO / "models" / "scene"
CASES = [(f, t) for f in ("scene_int8.onnx", "scene_int8.tflite") for t in (1, 2)]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _traces(n: int) -> list[list[float | None]]:
    spec = importlib.util.spec_from_file_location("scene_generate", SCENE_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    traces, _ = gen.generate_dataset(max(1, n // len(gen.SCENE_NAMES)), 99)
    return [gen.as_reported(t) for t in traces]


def one_case(filename: str, threads: int, n: int) -> dict[str, float]:
    traces = _traces(n)
    import numpy  # noqa: F401  (imported before the baseline, as the daemon would have it)

    from edgecall.inference.scene import CnnSceneClassifier

    rss0 = _rss_mb()
    t0 = time.perf_counter()
    clf = CnnSceneClassifier(SCENE_DIR / filename, threads=threads)
    load_ms = (time.perf_counter() - t0) * 1000
    rss1 = _rss_mb()
    for t in traces[:10]:  # warm-up
        clf.classify(t)
    lat = []
    for t in traces:
        t1 = time.perf_counter()
        clf.classify(t)
        lat.append((time.perf_counter() - t1) * 1000)
    lat.sort()
    return {
        "load_ms": load_ms,
        "p50_ms": lat[len(lat) // 2],
        "p95_ms": lat[int(len(lat) * 0.95)],
        "rss_model_mb": rss1 - rss0,
        "rss_total_mb": _rss_mb(),
        "traces": len(lat),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="scene CNN benchmark")
    ap.add_argument("--traces", type=int, default=300)
    ap.add_argument("--one", nargs=2, metavar=("FILE", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_case(args.one[0], int(args.one[1]), args.traces)))
        return 0
    rows = []
    for filename, threads in CASES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--traces",
                str(args.traces),
                "--one",
                filename,
                str(threads),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append((filename, threads, json.loads(out.stdout.strip().splitlines()[-1])))
    head = (
        f"{'model':<19}{'threads':>8}{'load ms':>9}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'RSS +MB':>9}{'RSS MB':>8}"
    )
    print(head)
    print("-" * len(head))
    for filename, threads, r in rows:
        print(
            f"{filename:<19}{threads:>8}{r['load_ms']:>9.1f}{r['p50_ms']:>8.3f}"
            f"{r['p95_ms']:>8.3f}{r['rss_model_mb']:>9.1f}{r['rss_total_mb']:>8.1f}"
        )
    print(
        f"({rows[0][2]['traces']} traces of 20-300 s each; latency = classify(), features included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
