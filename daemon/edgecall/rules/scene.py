"""The scene classifier seen by the redial rule: an interface, so rules stay pure.

The trained CNN (`edgecall.inference.scene`) implements it; tests may pass any
object with the same method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SCENES = ("normal", "elevator", "basement", "tunnel", "driving")


@dataclass(frozen=True)
class SceneGuess:
    scene: str
    confidence: float


class SceneClassifier(Protocol):
    def classify(self, trace_dbm: Sequence[float | None]) -> SceneGuess:
        """Classify a call's 1 Hz quality series (None = missing sample)."""
        ...
