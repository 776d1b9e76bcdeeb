"""Prompt audio on disk, ready to play: synthesized prompts and converted recordings.

A fixed prompt is synthesized once and then played from here, so its first word
reaches the caller as soon as the player opens the file. Entries are 16 kHz
mono 16-bit WAV files named by a digest of what made them (voice label, text,
rate; or the recording's path, size and mtime), with a small JSON sidecar that
says which voice spoke. Writes go through a temporary file and a rename, so a
crash never leaves a half-written prompt behind. The directory is kept under its
size bound by dropping the least recently played entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecall.speech.synth import CALL_RATE

log = logging.getLogger("edgecall.speech")


@dataclass(frozen=True)
class CachedPrompt:
    path: Path
    meta: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return float(self.meta.get("duration_s", 0.0))


def key_of(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def write_wav(path: Path, pcm: bytes, rate: int = CALL_RATE) -> None:
    """Atomically write mono 16-bit PCM as a WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class PromptCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self.scratch = self.dir / "pieces"  # one call's pieces of a prompt being synthesized
        self.scratch.mkdir(exist_ok=True)
        for stale in self.scratch.iterdir():  # pieces of calls that ended with the last run
            with contextlib.suppress(OSError):
                stale.unlink()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.dir / f"{key}.wav", self.dir / f"{key}.json"

    def get(self, key: str) -> CachedPrompt | None:
        wav, meta = self._paths(key)
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            os.utime(wav)  # recently played: kept longest
        except (OSError, ValueError):
            return None
        return CachedPrompt(wav, info)

    def put(self, key: str, pcm: bytes, meta: dict[str, Any]) -> CachedPrompt:
        wav, meta_path = self._paths(key)
        info = {**meta, "duration_s": round(len(pcm) / 2 / CALL_RATE, 3)}
        write_wav(wav, pcm)
        tmp = meta_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, meta_path)
        return CachedPrompt(wav, info)

    def prune(self) -> int:
        """Drop least recently played entries beyond the size bound; returns how many."""
        entries = []
        for wav in self.dir.glob("*.wav"):
            with contextlib.suppress(OSError):
                st = wav.stat()
                entries.append((st.st_mtime, st.st_size, wav))
        total = sum(size for _, size, _ in entries)
        dropped = 0
        for _, size, wav in sorted(entries):
            if total <= self.max_bytes:
                break
            for path in (wav, wav.with_suffix(".json")):
                with contextlib.suppress(OSError):
                    path.unlink()
            total -= size
            dropped += 1
        if dropped:
            log.info("prompt cache: %d least recently played prompts dropped", dropped)
        return dropped
