"""Figures of a scene model as the redial rule uses it (issue 19, part 2 and 3).

Pure numpy on predictions and confidences, so the build (export.py), the
model-file tests and the bench compute them the same way:

- confusion matrix (rows true, columns predicted) and per-class recall;
- expected calibration error (ECE): the confidence-weighted gap between how
  sure the model says it is and how often it is right, over ECE_BINS bins;
- the wrong-scene rate among confident decisions: of the calls whose
  confidence reaches the rule's `min_scene_confidence`, the share given a
  wrong scene (below the threshold the rule uses the default delay);
- accuracy as a function of how much of the call has been seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from generate import as_reported

ECE_BINS = 10
# the shipped config.yaml's rules.redial.min_scene_confidence (tests check they agree)
MIN_SCENE_CONFIDENCE = 0.5
MAX_WRONG_SCENE_RATE = 0.02  # issue 19: among the calls the model decides
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


class Classifier(Protocol):
    """What the redial rule is given (edgecall.rules.scene.SceneClassifier), by duck typing:
    these scripts run without the daemon's imports."""

    labels: tuple[str, ...]

    def classify(self, trace_dbm: Sequence[float | None]):  # noqa: ANN201
        ...


def classify_all(clf: Classifier, traces: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(label index, confidence) of every trace, given as the daemon gives it (None = missing)."""
    guesses = [clf.classify(as_reported(t)) for t in traces]
    pred = np.array([clf.labels.index(g.scene) for g in guesses], dtype=np.int64)
    return pred, np.array([g.confidence for g in guesses])


def classifier_figures(
    clf: Classifier, traces: Sequence[np.ndarray], y: np.ndarray, threshold: float
) -> tuple[dict[str, object], np.ndarray]:
    """summary() of a classifier on labelled traces, and its predictions."""
    pred, conf = classify_all(clf, traces)
    return summary(y, pred, conf, threshold, clf.labels), pred


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def recalls(m: np.ndarray) -> list[float]:
    """Per true class: the share predicted as itself."""
    return [round(float(m[i, i] / max(1, m[i].sum())), 4) for i in range(len(m))]


def format_confusion(m: np.ndarray, names: Sequence[str]) -> str:
    """Rows: true scene, columns: predicted scene."""
    w = max(len(s) for s in names) + 1
    lines = ["true\\pred".ljust(w) + "".join(s[:8].rjust(9) for s in names)]
    for name, row in zip(names, m, strict=True):
        lines.append(name.ljust(w) + "".join(str(v).rjust(9) for v in row))
    return "\n".join(lines)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(float(confidence[sel].mean()) - float(correct[sel].mean()))
    return round(float(total), 4)


def confident_figures(
    confidence: np.ndarray, correct: np.ndarray, threshold: float
) -> dict[str, float]:
    """Share of calls decided by the model at `threshold`, and how many of those are wrong."""
    sure = confidence >= threshold
    wrong = float((~correct[sure]).mean()) if sure.any() else 0.0
    return {"decided": round(float(sure.mean()), 4), "wrong_scene_rate": round(wrong, 4)}


def threshold_for(
    confidence: np.ndarray, correct: np.ndarray, max_wrong: float = MAX_WRONG_SCENE_RATE
) -> dict[str, float]:
    """The lowest confidence threshold (0.05 steps) whose wrong-scene rate is <= max_wrong,
    and the share of calls the model still decides there."""
    for t in np.arange(0.5, 1.0, 0.05):
        m = confident_figures(confidence, correct, float(t))
        if m["wrong_scene_rate"] <= max_wrong:
            return {"threshold": round(float(t), 2), **m}
    return {"threshold": 1.0, **confident_figures(confidence, correct, 1.0)}


def summary(
    y: np.ndarray, pred: np.ndarray, confidence: np.ndarray, threshold: float, names: Sequence[str]
) -> dict[str, object]:
    """Everything the card quotes for one model on one set of traces."""
    m = confusion(y, pred, len(names))
    correct = pred == y
    return {
        "traces": len(y),
        "accuracy": round(float(correct.mean()), 4),
        "recall": dict(zip(names, recalls(m), strict=True)),
        "ece": ece(confidence, correct),
        **confident_figures(confidence, correct, threshold),
        f"for_{MAX_WRONG_SCENE_RATE:g}_wrong": threshold_for(confidence, correct),
        "wrong_scene_rate_by_threshold": {
            f"{t:g}": confident_figures(confidence, correct, t)["wrong_scene_rate"]
            for t in THRESHOLDS
        },
        "confusion": m.tolist(),
    }


def accuracy_by_fraction(
    traces: Sequence[np.ndarray],
    y: np.ndarray,
    clf: Classifier,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, float]:
    """Accuracy when only the first fraction of each call is seen (the call ended there)."""
    out = {}
    for f in fractions:
        cut = [t[: max(1, int(round(len(t) * f)))] for t in traces]
        out[f"{f:g}"] = round(float((classify_all(clf, cut)[0] == y).mean()), 4)
    return out
