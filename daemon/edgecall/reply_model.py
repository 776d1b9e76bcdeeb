"""The reply model on disk: a linear scorer per reply kind, as JSON (seed 002).

Trained on the box by `edgecall.reply_training` (scikit-learn's logistic regression),
kept as plain numbers: the daemon scores a turn with one numpy product and never
unpickles anything. `state_dir/reply-model.json` is the model in use and
`reply-model.previous.json` the one before it. A file that does not load is reported
with its path and reason; the calls then use the rules' order of replies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.model_json import load_json, save_json

MODEL_SCHEMA = "edgecall.reply-model/1"
MODEL_FILE = "reply-model.json"
PREVIOUS_FILE = "reply-model.previous.json"


class ReplyModelError(ValueError):
    """A reply model file that cannot be used (the message names the file and why)."""


class ReplyModel:
    def __init__(
        self,
        features: Sequence[str],
        labels: Sequence[str],
        coef: Any,
        intercept: Any,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.features = list(features)
        self.labels = list(labels)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.meta = dict(meta or {})
        if self.coef.shape != (len(self.labels), len(self.features)):
            raise ReplyModelError(
                f"coef is {self.coef.shape}, expected {len(self.labels)} labels x "
                f"{len(self.features)} features"
            )
        if self.intercept.shape != (len(self.labels),):
            raise ReplyModelError(f"intercept is {self.intercept.shape}, expected one per label")
        if not (np.isfinite(self.coef).all() and np.isfinite(self.intercept).all()):
            raise ReplyModelError("coef or intercept holds a value that is not finite")
        self._index = {name: i for i, name in enumerate(self.features)}
        self._label = {name: i for i, name in enumerate(self.labels)}

    def scores(self, features: Mapping[str, float], options: Sequence[str]) -> dict[str, float]:
        x = np.zeros(len(self.features))
        for name, value in features.items():
            i = self._index.get(name)
            if i is not None and math.isfinite(value):
                x[i] = value
        known = [o for o in options if o in self._label]
        if not known:
            return {}
        rows = [self._label[o] for o in known]
        values = self.coef[rows] @ x + self.intercept[rows]
        return dict(zip(known, values.tolist(), strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": MODEL_SCHEMA,
            **self.meta,
            "features": self.features,
            "labels": self.labels,
            "coef": self.coef.round(6).tolist(),
            "intercept": self.intercept.round(6).tolist(),
        }

    def save(self, path: Path) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> ReplyModel:
        data = load_json(path, MODEL_SCHEMA, ReplyModelError)
        try:
            meta = {
                k: v
                for k, v in data.items()
                if k not in ("schema", "features", "labels", "coef", "intercept")
            }
            return cls(data["features"], data["labels"], data["coef"], data["intercept"], meta)
        except KeyError as exc:
            raise ReplyModelError(f"{path}: missing {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ReplyModelError(f"{path}: {exc}") from None
