"""What every on-device voice offers the speaking half of the appliance.

A voice turns one sentence of text into float32 mono samples at its own rate.
The call path never talks to a voice directly: `speech.synth` runs voices in
their own worker process and `speech.prompts` caches and streams their audio.
Each voice lives in a model directory with a `manifest.json` (see
`edgecall.inference.manifest`) listing every file's sha256, the voice's
`language`, `sample_rate`, `quality` and `license`; files are verified before
they are loaded.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

Quality = Literal["high", "low"]


class VoiceError(Exception):
    """A voice cannot be loaded (missing or corrupt files, wrong manifest)."""


class UnpronounceableText(ValueError):
    """Nothing speakable is left of the text after normalisation (empty, unknown characters)."""


class Voice(Protocol):
    """One loaded voice. `synthesize` is called for one sentence at a time."""

    name: str  # the model directory's manifest name, e.g. "piper-en-us-joe-medium"
    language: str  # "zh" or "en"
    sample_rate: int  # of the samples synthesize returns
    quality: Quality  # "low": intelligible at best (espeak-ng); check-config warns

    def synthesize(self, text: str) -> np.ndarray:
        """float32 mono samples in [-1, 1] for one sentence; raises UnpronounceableText."""
        ...
