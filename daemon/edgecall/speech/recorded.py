"""Recorded prompts, converted once to the call's rate with sox.

Technicians drop in whatever the studio delivered (44.1 kHz stereo WAV, MP3,
FLAC...): sox reads it and writes the 16 kHz mono 16-bit WAV the conference
bridge plays without resampling per call. A file sox cannot read, or one with
no sound in it, is refused with sox's own words and the file's name.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from edgecall.speech.synth import CALL_RATE

SOX_TIMEOUT_S = 60.0
SILENT_PEAK = 33  # -60 dBFS: a recording quieter than this throughout is taken for silence


class RecordingError(Exception):
    """A recorded prompt that cannot be played; the message names the file."""


def convert(src: Path) -> bytes:
    """The recording as 16 kHz mono int16 PCM; RecordingError when it cannot be read."""
    if not src.is_file():
        raise RecordingError(f"{src}: recording not found")
    sox = shutil.which("sox")
    if sox is None:
        raise RecordingError(f"{src}: sox is not installed, recordings cannot be converted")
    with tempfile.TemporaryDirectory(prefix="edgecall-rec-") as tmp:
        out = Path(tmp) / "prompt.wav"
        cmd = [sox, "-V1", str(src), "-r", str(CALL_RATE), "-c", "1", "-b", "16"]
        cmd += ["-e", "signed-integer", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=SOX_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RecordingError(f"{src}: sox took longer than {SOX_TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["unreadable"])[-1]
            raise RecordingError(f"{src}: not a recording sox can read: {why}")
        with wave.open(str(out), "rb") as w:
            pcm = w.readframes(w.getnframes())
    samples = np.frombuffer(pcm, dtype="<i2")
    if samples.size == 0 or int(np.max(np.abs(samples.astype(np.int32)))) < SILENT_PEAK:
        raise RecordingError(f"{src}: the recording is empty or silent")
    return pcm
