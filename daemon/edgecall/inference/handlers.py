"""Worker-side handlers: the model runtimes shaped for `InferenceClient`'s registry.

A handler has a no-argument constructor, `load(config)` with the daemon's
`ModelsConfig`, and public methods the daemon calls by name. Imported only in the
worker process, so the daemon never loads a model runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.rules.scene import SceneGuess

log = logging.getLogger("edgecall.inference")


def model_path(models: Any, path: Path) -> Path:
    """A configured model path; relative ones resolve under `models.dir`."""
    return path if path.is_absolute() else Path(models.dir) / path


class SceneHandler:
    """`scene.classify(trace_dbm=[...])` -> SceneGuess, by the shipped CNN."""

    def load(self, config: Any) -> None:
        from edgecall.inference.scene import CnnSceneClassifier

        if config.scene is None:
            raise ValueError("models.scene is not configured")
        self._classifier = CnnSceneClassifier(model_path(config, config.scene), config.threads)

    def classify(self, trace_dbm: Sequence[float | None]) -> SceneGuess:
        return self._classifier.classify(trace_dbm)


# Audio kept per call so the acoustic model can hear a whole utterance: the longest
# utterance the endpointer lets through, plus the speech padding, plus margin.
KEEP_AUDIO_S = 45.0
SAMPLE_RATE = 16000


class AudioHistory:
    """At least the last `keep` samples of a call's audio, for the acoustic model.

    Appending copies only the new chunk (the buffer is twice `keep`, and is shifted
    once it is full): a plain concatenation would copy the whole 45 s, 1.4 MB, for every
    40 ms chunk of every call."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._buf = np.zeros(2 * keep, dtype=np.int16)
        self._n = 0  # samples held in _buf
        self.start = 0  # sample index (since the call's first audio) of _buf[0]

    def append(self, pcm: np.ndarray) -> None:
        if self._n + pcm.size > self._buf.size:
            drop = min(self._n, max(0, self._n + pcm.size - self.keep))
            self._buf[: self._n - drop] = self._buf[drop : self._n]
            self._n -= drop
            self.start += drop
            if self._n + pcm.size > self._buf.size:  # a chunk longer than keep
                self._buf = np.concatenate([self._buf[: self._n], np.zeros_like(pcm)])
        self._buf[self._n : self._n + pcm.size] = pcm
        self._n += pcm.size

    def between(self, lo: int, hi: int) -> np.ndarray:
        """Samples [lo, hi) (call sample indices), as far as they are still held."""
        a, b = max(lo - self.start, 0), max(min(hi - self.start, self._n), 0)
        return self._buf[a:b] if b > a else self._buf[:0]


@dataclass
class _CallAudio:
    recognizer: Any
    language: str
    history: AudioHistory = field(
        default_factory=lambda: AudioHistory(int(KEEP_AUDIO_S * SAMPLE_RATE))
    )


class CallAnalysisHandler:
    """Per call: VAD + ASR on the streamed caller audio; each finished utterance comes
    back with its text and acoustic emotion estimates, in one round trip.

    Calls are keyed by call id; the client keeps a call on one worker, and a worker
    restart loses only the utterance in progress.
    """

    def load(self, config: Any) -> None:
        from edgecall.inference.acoustic_emotion import AcousticEmotion
        from edgecall.inference.text_emotion import TextEmotion

        self.config = config
        self._calls: dict[str, _CallAudio] = {}
        self._engines: dict[tuple[Path, str], Any] = {}  # one loaded model per dir and language
        self._turn: Any = None
        emotion_dir = (
            model_path(config, config.acoustic_emotion) if config.acoustic_emotion else None
        )
        self._acoustic = (
            AcousticEmotion(
                emotion_dir,
                threads=config.threads,
                max_seconds=config.acoustic_max_seconds,
                backend=config.acoustic_emotion_backend,
            )
            if emotion_dir
            else None
        )
        self._text = TextEmotion(zh_model_dir=emotion_dir, lexicon=config.emotion_lexicon)

    def _recognizer(self, language: str) -> Any:
        """A new call's recognizer: its own VAD and endpointer, the worker's shared model."""
        from edgecall.inference.asr import UtteranceRecognizer, load_engine

        models = self.config.models
        chosen = next((a for a in models.asr if language in a.languages), None)
        if chosen is None:
            raise ValueError(f"no ASR model for language {language!r} in models.asr")
        key = (model_path(models, chosen.dir), language)
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = load_engine(
                key[0],
                kind=chosen.kind,
                language=language,
                vad=models.vad,
                threads=models.threads,
                beam_size=chosen.beam_size,
            )
        return UtteranceRecognizer.from_config(
            chosen, models, language, engine=engine, turn_detector=self._turn_detector()
        )

    def _turn_detector(self) -> Any:
        """The worker's one end-of-turn model (stateless, shared by its calls), if any."""
        eot = self.config.models.vad.end_of_turn
        if eot.model is None:
            return None
        if self._turn is None:
            from edgecall.inference.turn import TurnDetector

            try:
                self._turn = TurnDetector(model_path(self.config.models, eot.model))
            except Exception as exc:  # a bad model file costs the hold, not the call's words
                log.error("end-of-turn model unusable, pauses end turns as usual: %s", exc)
                self._turn = False
        return self._turn or None

    def feed(self, call_id: str, language: str, audio: np.ndarray) -> list[dict[str, Any]]:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _CallAudio(self._recognizer(language), language)
        pcm = np.asarray(audio, dtype=np.int16)
        call.history.append(pcm)
        return [self._describe(call, u) for u in call.recognizer.accept(pcm)]

    def flush(self, call_id: str, language: str) -> list[dict[str, Any]]:
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        return [self._describe(call, u) for u in call.recognizer.flush()]

    def close(self, call_id: str) -> bool:
        return self._calls.pop(call_id, None) is not None

    def _describe(self, call: _CallAudio, utterance: Any) -> dict[str, Any]:
        heard = call.history.between(
            int(utterance.start_s * SAMPLE_RATE), int(utterance.end_s * SAMPLE_RATE)
        )
        missing = []
        acoustic = None
        if self._acoustic is None:
            missing.append("acoustic: no model configured")
        elif heard.size == 0:
            missing.append("acoustic: utterance audio no longer buffered")
        else:
            estimate = self._acoustic.estimate(heard, SAMPLE_RATE)
            if estimate is None:
                missing.append("acoustic: too little voiced speech")
            else:
                acoustic = round(float(estimate.score), 4)
        language = call.language if call.language in ("zh", "en") else "en"
        text_score = self._text.estimate(utterance.text, language)
        return {
            "text": utterance.text,
            "language": utterance.language,
            "start_s": utterance.start_s,
            "end_s": utterance.end_s,
            "acoustic": acoustic,
            "text_score": None if text_score is None else round(float(text_score), 4),
            "missing": missing,
        }
