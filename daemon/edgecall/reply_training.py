"""Training the reply model on the box's call history (seed 002; issue 16 part 4).

Run by the daemon as a child process at low priority (`nice`, one thread), after
`rules.replies.retrain_calls` new calls or at `retrain_at` each night:

    python -m edgecall.reply_training STATE_DIR/history.sqlite STATE_DIR --threshold 60

1. Every recorded turn that had a choice of replies is a sample: its features, its
   candidates in the rules' order, the reply said and the probability it had, and its
   feedback score (`edgecall.rules.replies.feedback_score`).
2. The latest `holdout` share of them (by when the call ended) is kept aside.
3. Of the rest, per reply kind, a logistic regression (scikit-learn) learns from the
   turn's features whether that reply scores above the threshold: the replies above it
   are the seed's samples of what to say, and those below it teach what not to. (Seed
   002 keeps only the good ones and learns to imitate them; with a tenth of turns
   exploring, imitation weighed by 1/probability did worse than the rules on held-out
   turns after 1,500 simulated calls (53.5 against 57.3), as a few lucky rare replies
   weigh 30 times as much as the rest. A model per reply needs no such weights: it sees
   the features the choice was made on.)
4. On the held-out turns, the new model, the model in use and the rules' own order are
   each valued by self-normalised inverse propensity scoring: the mean feedback score of
   the turns where that policy would have said what was said, each weighed by 1 / the
   probability it had.
5. The new model replaces the one in use only when it is worth at least as much as both
   (over at least `MIN_MATCHES` held-out turns); a model in use that is worth less than
   the rules is retired and the calls go back to the rules. The model before is kept
   as `reply-model.previous.json`.

It prints one JSON object: what it decided and the figures it decided on.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecall.config.rules import FeedbackScoreConfig
from edgecall.reply_model import MODEL_FILE, PREVIOUS_FILE, ReplyModel, ReplyModelError
from edgecall.rules.replies import ReplyChooser, feedback_score

MIN_MATCHES = 10  # held-out turns a policy must agree with before its value means anything
MIN_PER_KIND = 20  # samples of a reply kind before the model judges it


@dataclass(frozen=True)
class Sample:
    features: dict[str, float]
    options: tuple[str, ...]
    kind: str
    p: float
    score: float


def read_samples(history: Path, weights: FeedbackScoreConfig) -> list[Sample]:
    """The history's turns that had a choice of replies, oldest call first."""
    db = sqlite3.connect(f"file:{history}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT t.reply, t.emotion_tendency, t.intent_tendency, n.emotion_tendency, "
            "n.intent_tendency, c.outcome, c.agreed FROM turns t JOIN calls c USING (call_id) "
            "LEFT JOIN turns n ON n.call_id = t.call_id AND n.turn = t.turn + 1 "
            "WHERE c.ended IS NOT NULL ORDER BY c.ended, t.call_id, t.turn"
        ).fetchall()
    finally:
        db.close()
    samples = []
    for reply, emotion, intent, next_emotion, next_intent, outcome, agreed in rows:
        choice = json.loads(reply or "{}").get("choice")
        if not choice or len(choice.get("options", ())) < 2 or not choice.get("p"):
            continue
        following = None if next_emotion is None else (next_emotion, next_intent or 0)
        this = (emotion or 0, intent or 0)
        score = feedback_score(this, following, outcome, bool(agreed), weights)
        samples.append(
            Sample(choice["features"], tuple(choice["options"]), choice["kind"], choice["p"], score)
        )
    return samples


def policy_value(choose: Any, samples: Sequence[Sample]) -> tuple[float | None, int]:
    """Self-normalised inverse propensity value of a policy on logged turns, and how many
    of them it agrees with."""
    num = den = 0.0
    matches = 0
    for s in samples:
        if choose(s) == s.kind:
            matches += 1
            num += s.score / s.p
            den += 1 / s.p
    return (num / den if den else None), matches


def model_policy(model: ReplyModel) -> Any:
    chooser, rng = ReplyChooser(model), random.Random(0)
    return lambda s: chooser.choose(s.options, s.features, rng).kind


def rules_policy(s: Sample) -> str:
    return s.options[0]


def fit(samples: Sequence[Sample], threshold: float, meta: dict[str, Any]) -> ReplyModel | None:
    """Per reply kind, the chance (as a logit) that it scores above the threshold for a
    turn like this one; kinds with too few samples, or only good or only bad ones, are
    left out (the model then never prefers them). None: no kind could be fitted."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = DictVectorizer(sparse=False)
    vectorizer.fit([s.features for s in samples])
    names = vectorizer.get_feature_names_out().tolist()
    labels, coef, intercept = [], [], []
    for kind in sorted({s.kind for s in samples}):
        mine = [s for s in samples if s.kind == kind]
        good = [s.score > threshold for s in mine]
        if len(mine) < MIN_PER_KIND or all(good) or not any(good):
            continue
        lr = LogisticRegression(C=1.0, max_iter=2000)
        lr.fit(vectorizer.transform([s.features for s in mine]), good)
        labels.append(kind)
        coef.append(lr.coef_[0].tolist())
        intercept.append(float(lr.intercept_[0]))
    if not labels:
        return None
    return ReplyModel(names, labels, coef, intercept, meta)


def train(
    samples: Sequence[Sample],
    *,
    threshold: float,
    min_samples: int,
    holdout: float,
    current: ReplyModel | None,
) -> tuple[str, ReplyModel | None, dict[str, Any]]:
    """(decision, the model to use from now on or None for the rules, the figures)."""
    cut = int(len(samples) * (1 - holdout))
    fitting, held = samples[:cut], samples[cut:]
    good = [s for s in fitting if s.score > threshold]
    raw: dict[str, tuple[float | None, int]] = {"rules": policy_value(rules_policy, held)}
    if current is not None:
        raw["current"] = policy_value(model_policy(current), held)
    figures: dict[str, Any] = {"samples": len(fitting), "good": len(good), "held_out": len(held)}

    def result(decision: str, model: ReplyModel | None) -> tuple[str, ReplyModel | None, dict]:
        figures["values"] = {name: _value(*v) for name, v in raw.items()}
        return decision, model, figures

    if len(good) < min_samples:
        return result("too_few_samples", current)
    meta = {"trained_at": time.time(), "samples": len(fitting), "good": len(good)}
    new = fit(fitting, threshold, meta)
    if new is None or len(new.labels) < 2:
        return result("one_reply_only", current)
    raw["new"] = policy_value(model_policy(new), held)
    new_value, new_matches = raw["new"]
    if new_value is None or new_matches < MIN_MATCHES:
        return result("held_out_too_small", current)

    def worth(name: str) -> float | None:
        value, matches = raw.get(name, (None, 0))
        return value if matches >= MIN_MATCHES else None

    rivals = [v for v in (worth("rules"), worth("current")) if v is not None]
    if all(new_value >= v for v in rivals):
        new.meta["held_out"] = {name: _value(*v) for name, v in raw.items()}
        return result("adopted", new)
    in_use, rules = worth("current"), worth("rules")
    if current is not None and in_use is not None and rules is not None and in_use < rules:
        return result("rules", None)
    return result("kept", current)


def _value(value: float | None, matches: int) -> dict[str, Any]:
    return {"value": None if value is None else round(value, 2), "matches": matches}


def run(
    history: Path, directory: Path, *, feedback: FeedbackScoreConfig, **settings: Any
) -> dict[str, Any]:
    """Train, decide and leave the files as decided; the result says what happened."""
    path, previous = directory / MODEL_FILE, directory / PREVIOUS_FILE
    current = None
    if path.exists():
        try:
            current = ReplyModel.load(path)
        except ReplyModelError as exc:
            print(f"model in use ignored: {exc}", file=sys.stderr)
    samples = read_samples(history, feedback)
    decision, model, figures = train(samples, current=current, **settings)
    if decision == "adopted" and model is not None:
        if path.exists():
            path.replace(previous)
        model.save(path)
    elif decision == "rules" and path.exists():
        path.replace(previous)
    return {"decision": decision, "model": str(path) if path.exists() else None, **figures}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecall.reply_training")
    parser.add_argument("history", type=Path, help="the call history (history.sqlite)")
    parser.add_argument("directory", type=Path, help="where the reply model files live")
    parser.add_argument("--threshold", type=float, default=60.0)
    parser.add_argument("--min-samples", type=int, default=50)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument(
        "--feedback", default="{}", help="rules.replies.feedback as JSON (default: its defaults)"
    )
    args = parser.parse_args(argv)
    try:
        result = run(
            args.history,
            args.directory,
            threshold=args.threshold,
            min_samples=args.min_samples,
            holdout=args.holdout,
            feedback=FeedbackScoreConfig.model_validate_json(args.feedback),
        )
    except (sqlite3.Error, OSError, ValueError) as exc:
        print(f"reply training failed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
