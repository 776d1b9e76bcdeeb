"""Scene CNN figures and speed on this machine (issue 19: the table the card quotes).

Run: `.venv/bin/python tests/bench/bench_scene.py [--traces 300]`.

First the figures, through `CnnSceneClassifier` on fresh traces of each story
(models/scene/stories.py, seed 4242, 200 per scene): leave-one-story-out (the
logo/ model trained without the story) and the shipped model, per file type:
accuracy, per-scene recall, expected calibration error, the share of calls the
model decides at the shipped `min_scene_confidence` and the wrong-scene rate
among them, ONNX/TFLite agreement, and accuracy when only the first part of the
call is seen. Then speed: each (backend, threads) case runs in its own process,
so RSS is that case alone; load time includes the sha256 check of the model
file; latency is one `classify()` call (features + inference) on generated
traces of 15-900 s.
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


def _scene_module(name: str):
    """A module of models/scene (they import each other by plain name)."""
    if str(SCENE_DIR) not in sys.path:
        sys.path.insert(0, str(SCENE_DIR))
    return importlib.import_module(name)


def _traces(n: int) -> list[list[float | None]]:
    stories, gen = _scene_module("stories"), _scene_module("generate")
    per = max(1, n // (len(gen.SCENE_NAMES) * len(stories.STORIES)))
    return [
        gen.as_reported(t) for s in stories.STORIES for t in stories.story_dataset(s, per, 99)[0]
    ]


def figures() -> None:
    """The accuracy table: leave-one-story-out and shipped, both file types."""
    from edgecall.inference.scene import CnnSceneClassifier

    stories, evaluate = _scene_module("stories"), _scene_module("evaluate")
    head = (
        f"{'model':<20}{'story':>6}{'type':>7}{'acc':>7}{'min rec':>8}{'ECE':>7}"
        f"{'decided':>8}{'wrong':>7}{'agree':>7}  acc at 25/50/75/100 % of the call"
    )
    print(head)
    print("-" * len(head))
    for story in stories.STORIES:
        traces, y = stories.story_dataset(story, 200, 4242)
        for label, stem in (("held out", f"logo/scene_without_{story}"), ("shipped", "scene_int8")):
            preds = {}
            for kind in ("onnx", "tflite"):
                clf = CnnSceneClassifier(SCENE_DIR / f"{stem}.{kind}", threads=1)
                m, preds[kind] = evaluate.classifier_figures(
                    clf, traces, y, evaluate.MIN_SCENE_CONFIDENCE
                )
                agree = float((preds["onnx"] == preds[kind]).mean())
                by_f = evaluate.accuracy_by_fraction(traces, y, clf)
                print(
                    f"{label:<20}{story:>6}{kind:>7}{m['accuracy']:>7.3f}"
                    f"{min(m['recall'].values()):>8.3f}{m['ece']:>7.3f}{m['decided']:>8.3f}"
                    f"{m['wrong_scene_rate']:>7.3f}{agree:>7.3f}  "
                    + " / ".join(f"{v:.3f}" for v in by_f.values())
                )
                if label == "held out":
                    print(
                        " " * 20
                        + "recall "
                        + ", ".join(f"{k} {v:.3f}" for k, v in m["recall"].items())
                    )
    print(
        f"(min_scene_confidence {evaluate.MIN_SCENE_CONFIDENCE}; 1000 traces per story; "
        "agree = same scene as the ONNX file)"
    )
    for name in ("scene_int8.onnx", "scene_int8.tflite"):
        print(f"{name}: {(SCENE_DIR / name).stat().st_size / 1000:.1f} kB")
    print()


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
    figures()
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
    print(f"({rows[0][2]['traces']} traces of 15-900 s; latency = classify(), features included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
