"""What the inference workers are told at start: the models section, made self-contained.

Workers run in other processes and know nothing of config.yaml's location, so
the models directory is made absolute here; the text emotion's domain lexicon,
which lives in the language packs, travels along. Handlers read model settings
as attributes (`config.scene`, `config.threads`...), delegated to ModelsConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecall.config.models import ModelsConfig
from edgecall.config.root import EdgecallConfig

# Score a mood phrase of config.yaml's lexicons carries for the text emotion model.
LEXICON_SCORE = 0.6


@dataclass(frozen=True)
class InferenceConfig:
    models: ModelsConfig
    emotion_lexicon: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("models", "emotion_lexicon"):
            raise AttributeError(name)  # keeps pickling and copying away from delegation
        return getattr(self.models, name)

    @classmethod
    def from_config(cls, cfg: EdgecallConfig, base_dir: Path) -> InferenceConfig:
        models_dir = cfg.models.dir if cfg.models.dir.is_absolute() else base_dir / cfg.models.dir
        lexicon: dict[str, float] = {}
        for pack in cfg.languages.values():
            lexicon.update({p.lower(): LEXICON_SCORE for p in pack.emotion_positive})
            lexicon.update({p.lower(): -LEXICON_SCORE for p in pack.emotion_negative})
        return cls(cfg.models.model_copy(update={"dir": models_dir}), lexicon)
