"""Test audio: speech synthesised with espeak-ng, and recordings converted with sox to what
a call carries. Kept apart from the SIP helpers so that ASR tests and benchmarks do not
load pjsua2 (it would count in their memory figures)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def convert_audio(src: Path, out: Path, telephone: bool = False) -> Path:
    """`src` as 16 kHz mono 16-bit, or as a PSTN trunk delivers it: 8 kHz G.711 mu-law,
    band-limited to 300-3400 Hz. No dither (-D): the same audio every run."""
    if telephone:
        conv = ["-r", "8000", "-c", "1", "-e", "u-law", str(out), "sinc", "300-3400"]
    else:
        conv = ["-r", "16000", "-c", "1", "-b", "16", str(out)]
    subprocess.run(["sox", "-D", str(src), *conv], check=True)
    return out


def make_wav(path: Path, text: str, voice: str = "en") -> Path:
    """Synthesize `text` with espeak-ng and convert it to 16 kHz mono 16-bit with sox."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path), "norm", "-3"],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    return path
