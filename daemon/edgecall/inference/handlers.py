"""Worker-side handlers: the model runtimes shaped for `InferenceClient`'s registry.

A handler has a no-argument constructor, `load(config)` with the daemon's
`ModelsConfig`, and public methods the daemon calls by name. Imported only in the
worker process, so the daemon never loads a model runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecall.rules.scene import SceneGuess


def model_path(models: Any, path: Path) -> Path:
    """A configured model path; relative ones resolve under `models.dir`."""
    return path if path.is_absolute() else Path(models.dir) / path


class SceneHandler:
    """`scene.classify(trace_dbm=[...])` -> SceneGuess, by the shipped CNN."""

    def load(self, config: Any) -> None:
        from edgecall.inference.scene import CnnSceneClassifier

        if config.scene is None:
            raise ValueError("models.scene is not configured")
        self._classifier = CnnSceneClassifier(model_path(config, config.scene), config.threads)

    def classify(self, trace_dbm: Sequence[float | None]) -> SceneGuess:
        return self._classifier.classify(trace_dbm)
