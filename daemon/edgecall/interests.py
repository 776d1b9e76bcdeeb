"""What a customer is likely to care about, from their list features (seed 003 S2, S21-S25).

Trained on the box from the history (`edgecall.interest_training`, a child process):
each customer of a list who was called is a sample; their features are the list's
(`edgecall.customers`), and their interest in a topic is whether any of their calls named
it (they asked about it, or it was their influencing factor). Per topic:

- S21 cleaning: numbers clipped to the training set's 1st-99th percentiles, a missing
  value replaced by the median with a `missing=<column>` flag beside it, categories and
  answer slots one-hot;
- S22 derived features: recency (days since the last purchase), frequency (purchases),
  monetary value (total and mean spend), responsiveness (open rate x join rate);
  a chi-square filter keeps the `MAX_FEATURES` most related to the topic;
- S23 a gradient-boosting model (LightGBM, log loss) whose size and learning rate are
  chosen by 3-fold cross-validation;
- S24-S25 the customer's probability per topic, and the features that pushed it most
  (LightGBM's per-feature contributions), kept with the call.

The model file is JSON (the boosters as LightGBM's own text); a file that does not load
is reported and the calls go on without predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.model_json import load_json, save_json

MODEL_SCHEMA = "edgecall.interest-model/1"
MODEL_FILE = "interest-model.json"
NUMERIC = (
    "total_spend",
    "purchase_count",
    "clicks",
    "page_time_s",
    "campaigns_joined",
    "call_duration_s",
    "satisfaction",
    "open_rate",
    "join_rate",
)
MAX_FEATURES = 12
TOP_REASONS = 3


class InterestModelError(ValueError):
    """An interest model file that cannot be used (the message names the file and why)."""


def derive(raw: Mapping[str, Any], today: date) -> dict[str, float]:
    """A customer's list features as the model sees them (before clipping and filling)."""
    f: dict[str, float] = {}
    for name in NUMERIC:
        if name in raw:
            f[name] = float(raw[name])
        else:
            f[f"missing={name}"] = 1.0
    if "last_purchase" in raw:
        f["recency_days"] = float((today - date.fromisoformat(raw["last_purchase"])).days)
    else:
        f["missing=last_purchase"] = 1.0
    if raw.get("purchase_count"):
        f["mean_spend"] = float(raw.get("total_spend", 0.0)) / float(raw["purchase_count"])
    if "open_rate" in raw and "join_rate" in raw:
        f["responsiveness"] = float(raw["open_rate"]) * float(raw["join_rate"])
    for category in raw.get("categories", ()):
        f[f"category={category}"] = 1.0
    for slot in raw.get("answer_slots", ()):
        f[f"slot={slot}"] = 1.0
    return f


class Cleaning:
    """S21: the bounds and medians of the training set, applied to every customer."""

    def __init__(self, columns: list[str], low: list[float], high: list[float], fill: list[float]):
        self.columns, self.low, self.high, self.fill = columns, low, high, fill
        self._index = {c: i for i, c in enumerate(columns)}

    @classmethod
    def fit(cls, rows: list[dict[str, float]]) -> Cleaning:
        columns = sorted({k for r in rows for k in r})
        low, high, fill = [], [], []
        for c in columns:
            values = np.array([r[c] for r in rows if c in r], dtype=np.float64)
            numeric = not c.startswith(("missing=", "category=", "slot="))
            low.append(float(np.percentile(values, 1)) if numeric else 0.0)
            high.append(float(np.percentile(values, 99)) if numeric else 1.0)
            fill.append(float(np.median(values)) if numeric else 0.0)
        return cls(columns, low, high, fill)

    def matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        x = np.tile(np.array(self.fill), (len(rows), 1))
        for i, r in enumerate(rows):
            for k, v in r.items():
                j = self._index.get(k)
                if j is not None:
                    x[i, j] = v
        return np.clip(x, self.low, self.high)

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "low": self.low, "high": self.high, "fill": self.fill}


class InterestModel:
    def __init__(self, cleaning: Cleaning, topics: dict[str, dict[str, Any]], meta: dict[str, Any]):
        import lightgbm as lgb

        self.cleaning = cleaning
        self.topics = topics  # topic -> features (selected columns), booster text, figures
        self.meta = meta
        self._boosters = {t: lgb.Booster(model_str=m["booster"]) for t, m in topics.items()}
        self._columns = {
            t: [cleaning.columns.index(c) for c in m["features"]] for t, m in topics.items()
        }

    def predict(self, raw: Mapping[str, Any], today: date) -> dict[str, dict[str, Any]]:
        """Per topic: p (the chance the customer cares about it) and reasons, the features
        that moved it most, with their contributions (log odds)."""
        x = self.cleaning.matrix([derive(raw, today)])
        out = {}
        for topic, booster in self._boosters.items():
            cols = self._columns[topic]
            row = x[:, cols]
            p = float(booster.predict(row)[0])
            contrib = booster.predict(row, pred_contrib=True)[0][:-1]  # the last is the bias
            names = self.topics[topic]["features"]
            order = np.argsort(-np.abs(contrib))[:TOP_REASONS]
            out[topic] = {
                "p": round(p, 4),
                "reasons": [
                    {"feature": names[i], "contribution": round(float(contrib[i]), 4)}
                    for i in order
                    if contrib[i] != 0
                ],
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": MODEL_SCHEMA,
            **self.meta,
            "cleaning": self.cleaning.to_json(),
            "topics": self.topics,
        }

    def save(self, path: Path) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> InterestModel:
        data = load_json(path, MODEL_SCHEMA, InterestModelError)
        try:
            c = data["cleaning"]
            cleaning = Cleaning(c["columns"], c["low"], c["high"], c["fill"])
            meta = {k: v for k, v in data.items() if k not in ("schema", "cleaning", "topics")}
            return cls(cleaning, data["topics"], meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise InterestModelError(f"{path}: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # LightGBM raises its own error for a broken booster
            raise InterestModelError(f"{path}: booster unusable: {exc}") from None


def top_interest(
    predicted: Mapping[str, Mapping[str, Any]], threshold: float
) -> tuple[str, float] | None:
    """The topic the customer most likely cares about, if its chance passes `threshold`."""
    if not predicted:
        return None
    topic = max(predicted, key=lambda t: predicted[t]["p"])
    p = float(predicted[topic]["p"])
    return (topic, p) if p >= threshold else None
