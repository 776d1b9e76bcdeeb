"""Training the interest model on the box's history (seed 003 S2-S25; issue 18 part 2).

Run by the daemon as a child process at low priority, with the reply model:

    python -m edgecall.interest_training STATE_DIR/history.sqlite STATE_DIR --topics price,data

A topic is modelled only with at least `MIN_EACH` customers who named it and as many who
did not, and kept only when its cross-validated log loss beats always guessing the
share who named it. It prints one JSON object: what it trained and its figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.interests import MAX_FEATURES, MODEL_FILE, Cleaning, InterestModel, derive

MIN_EACH = 10
GRID = {"num_leaves": [4, 8], "n_estimators": [40, 80], "learning_rate": [0.05, 0.1]}


def read_samples(history: Path) -> list[tuple[dict[str, Any], set[str]]]:
    """Each listed customer who was called: (their list features, the topics they showed
    an interest in). A call shows interest in the topics the caller asked about, and,
    when it ended in a sale, in the topics its introduction explained first (a group's
    script): a customer whose concern the box answered before they asked asks nothing,
    and would otherwise teach the model they had none. Influencing factors do not count:
    they are found in the robot's words too (measured in the simulated population: the
    offer's '100 GB' made 'data' the factor of three failed calls in four)."""
    db = sqlite3.connect(f"file:{history}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT c.number, c.features, t.reply FROM customers c JOIN calls k "
            "ON k.number = c.number LEFT JOIN turns t ON t.call_id = k.call_id "
            "WHERE k.ended IS NOT NULL ORDER BY c.rowid"
        ).fetchall()
        explained = db.execute(
            "SELECT k.number, g.topics FROM calls k JOIN node_variants v USING (call_id) "
            "JOIN group_scripts g ON g.prompt = v.variant AND g.campaign = k.campaign "
            "WHERE k.agreed = 1"
        ).fetchall()
    finally:
        db.close()
    samples: dict[str, tuple[dict[str, Any], set[str]]] = {}
    for number, features, reply in rows:
        _, named = samples.setdefault(number, (json.loads(features), set()))
        said = json.loads(reply or "{}")
        if said.get("answer") == "topic" and said.get("topic"):
            named.add(said["topic"])
    for number, topics in explained:
        if number in samples:
            samples[number][1].update(json.loads(topics))
    return list(samples.values())


def train(
    samples: Sequence[tuple[dict[str, Any], set[str]]], topics: Sequence[str], today: date
) -> tuple[InterestModel | None, dict[str, Any]]:
    from lightgbm import LGBMClassifier
    from sklearn.feature_selection import SelectKBest, chi2
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    rows = [derive(raw, today) for raw, _ in samples]
    figures: dict[str, Any] = {"customers": len(samples), "topics": {}}
    if not rows:
        return None, figures
    cleaning = Cleaning.fit(rows)
    x = cleaning.matrix(rows)
    span = np.maximum(np.array(cleaning.high) - np.array(cleaning.low), 1e-9)
    scaled = (x - np.array(cleaning.low)) / span  # chi-square needs values >= 0
    kept: dict[str, dict[str, Any]] = {}
    for topic in topics:
        y = np.array([topic in named for _, named in samples], dtype=np.int64)
        positives = int(y.sum())
        if min(positives, len(y) - positives) < MIN_EACH:
            figures["topics"][topic] = {"skipped": f"{positives} of {len(y)} named it"}
            continue
        k = min(MAX_FEATURES, x.shape[1])
        selector = SelectKBest(chi2, k=k).fit(scaled, y)
        cols = [int(i) for i in np.flatnonzero(selector.get_support())]
        search = GridSearchCV(
            LGBMClassifier(min_child_samples=10, verbose=-1, n_jobs=1, random_state=0),
            GRID,
            scoring="neg_log_loss",
            cv=StratifiedKFold(3, shuffle=True, random_state=0),
        )
        search.fit(x[:, cols], y)
        cv_loss = -float(search.best_score_)
        base = y.mean()
        baseline = -(base * math.log(base) + (1 - base) * math.log(1 - base))
        figure = {
            "positives": positives,
            "customers": len(y),
            "cv_log_loss": round(cv_loss, 4),
            "base_rate_log_loss": round(float(baseline), 4),
            "params": search.best_params_,
            "features": [cleaning.columns[i] for i in cols],
        }
        figures["topics"][topic] = figure
        if cv_loss >= baseline:
            figure["skipped"] = "no better than the base rate"
            continue
        booster = search.best_estimator_.booster_.model_to_string()
        kept[topic] = {**figure, "booster": booster}
    if not kept:
        return None, figures
    meta = {"trained_at": time.time(), "customers": len(samples)}
    return InterestModel(cleaning, kept, meta), figures


def run(history: Path, directory: Path, topics: Sequence[str]) -> dict[str, Any]:
    model, figures = train(read_samples(history), topics, date.today())
    if model is not None:
        model.save(directory / MODEL_FILE)
    return {"trained": model is not None, "model": str(directory / MODEL_FILE), **figures}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecall.interest_training")
    parser.add_argument("history", type=Path)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--topics", required=True, help="comma-separated topic names")
    args = parser.parse_args(argv)
    try:
        result = run(args.history, args.directory, args.topics.split(","))
    except (sqlite3.Error, OSError, ValueError) as exc:
        print(f"interest training failed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
