"""Caller audio kept on disk when `storage.recordings_dir` is set (for quality review).

One WAV per call (16 kHz mono 16-bit, the call's own audio as the models heard
it), named after the call id and the start time so that files sort by time and
never collide. A disk that fails or fills stops the recording, never the call:
the error is logged once and noted in the call's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import wave
from pathlib import Path

log = logging.getLogger("edgecall.recording")

SAMPLE_RATE = 16000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@-]+")


def recording_path(directory: Path, call_id: str, t: float) -> Path:
    """`<dir>/<UTC start>-<call id with unsafe characters replaced>.wav`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
    safe = _UNSAFE.sub("_", call_id)[:96] or "call"
    return directory / f"{stamp}-{safe}.wav"


class CallRecording:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._wav: wave.Wave_write | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - open for the whole call
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        except OSError as exc:
            self._fail(exc)

    def write(self, pcm: bytes) -> None:
        if self._wav is None:
            return
        try:
            self._wav.writeframes(pcm)
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        if self._wav is None:
            return
        try:
            self._wav.close()
        except OSError as exc:
            self._fail(exc)
        self._wav = None

    def _fail(self, exc: OSError) -> None:
        self.error = f"recording {self.path} stopped: {exc.strerror or exc}"
        log.error("%s", self.error)
        wav, self._wav = self._wav, None
        if wav is not None:
            with contextlib.suppress(OSError):
                wav.close()
