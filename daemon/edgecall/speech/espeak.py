"""The last-resort voice: espeak-ng's formant synthesis through libespeak-ng (ctypes).

Robotic but always available on Debian (libespeak-ng1), for English (en-us) and Mandarin
(cmn). English text gets the same normalisation as the Piper voice, so prices, times and
phone numbers are read the same way by either voice.
"""

from __future__ import annotations

import numpy as np

from edgecall.speech.espeak_ng import espeak_ng
from edgecall.speech.piper import speakable
from edgecall.speech.voice import Quality, UnpronounceableText, VoiceError

DEFAULT_VOICES = {"en": "en-us", "zh": "cmn"}
RATE_WPM = 160  # espeak-ng's default 175 is hurried on a telephone line


class EspeakVoice:
    """espeak-ng voice `voice_name` (default: en-us for en, cmn for zh) at 22050 Hz."""

    quality: Quality = "low"

    def __init__(self, language: str, voice_name: str | None = None) -> None:
        if language not in DEFAULT_VOICES:
            raise VoiceError(f"espeak-ng voice: language {language!r} is not one of en, zh")
        self.language = language
        self.voice_name = voice_name or DEFAULT_VOICES[language]
        self.name = f"espeak-ng-{self.voice_name}"
        self._espeak = espeak_ng()
        self.sample_rate: int = self._espeak.sample_rate
        self._espeak.phonemize("a", self.voice_name)  # an unknown voice name fails here

    def synthesize(self, text: str) -> np.ndarray:
        """float32 samples at 22050 Hz; raises UnpronounceableText."""
        if self.language == "en":
            text = speakable(text)
        elif not any(c.isalnum() for c in text):
            raise UnpronounceableText(f"nothing to say in {text!r}")
        audio = self._espeak.synthesize(text, self.voice_name, RATE_WPM)
        if not np.any(audio):
            raise UnpronounceableText(f"espeak-ng said nothing for {text!r}")
        return audio
