"""Test audio: speech synthesised with espeak-ng or the on-device voices, and recordings
converted with sox to what a call carries. Kept apart from the SIP helpers so that ASR
tests and benchmarks do not load pjsua2 (it would count in their memory figures)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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


def say_wav(path: Path, text: str, language: str = "en", config: Path | None = None) -> Path:
    """Say `text` with the on-device voice of `language` (`edgecall say`, as a caller on
    G.722 hears it: 16 kHz mono 16-bit). The Piper voice is heard far more reliably by
    tiny.en than espeak-ng (WER 1 % against 12 %), for tests whose outcome hangs on words."""
    config = config or REPO / "config.yaml"
    said = subprocess.run(
        [sys.executable, "-m", "edgecall.cli", "say", "--config", str(config)]
        + ["--lang", language, text, "--codec", "g722", "-o", str(path)],
        capture_output=True,
        text=True,
    )
    if said.returncode != 0:
        raise RuntimeError(f"edgecall say {text!r}: {said.stderr[-2000:]}")
    return path
