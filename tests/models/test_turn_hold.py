"""The shipped smart-turn model in the recogniser: a caller who says "um" and pauses keeps
the turn; one who finished a sentence does not (espeak-ng speech, tiny.en)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgecall.config.models import VadConfig
from edgecall.inference.asr import UtteranceRecognizer
from edgecall.inference.turn import TurnDetector
from tests.harness.audio import make_wav

REPO = Path(__file__).resolve().parents[2]
CFG = VadConfig(end_of_turn={"model": "smart-turn"})


def pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def two_parts(tmp: Path, first: str, second: str) -> np.ndarray:
    a, b = pcm(make_wav(tmp / "a.wav", first)), pcm(make_wav(tmp / "b.wav", second))
    pause, tail = np.zeros(int(0.9 * 16000), np.int16), np.zeros(2 * 16000, np.int16)
    return np.concatenate([a, pause, b, tail])


@pytest.fixture(scope="module")
def detector() -> TurnDetector:
    return TurnDetector(REPO / "models" / "smart-turn")


def turns(audio: np.ndarray, detector: TurnDetector | None) -> list[str]:
    rec = UtteranceRecognizer(
        REPO / "models" / "whisper-tiny-en", language="en", vad=CFG, turn_detector=detector
    )
    return [u.text for u in rec.transcribe(audio, 16000)]


@pytest.mark.parametrize(
    ("first", "second"),
    [("I would like to know about, um", "the price of the plan."), ("Well, um", "how much is it?")],
)
def test_a_hesitation_holds_the_turn_through_a_pause(tmp_path, detector, first, second):
    audio = two_parts(tmp_path, first, second)
    assert len(turns(audio, None)) == 2  # 0.9 s of silence ends a turn without the model
    assert len(turns(audio, detector)) == 1


def test_a_finished_sentence_still_ends_the_turn(tmp_path, detector):
    audio = two_parts(tmp_path, "How much does the plan cost per month?", "Tell me more.")
    assert len(turns(audio, detector)) == 2


# --- ending a finished turn early (the shipped settings) ------------------------------

EARLY = VadConfig.model_validate(
    yaml.safe_load((REPO / "config.yaml").read_text("utf-8"))["models"]["vad"]
)
CHUNK = 1600  # the 100 ms chunks the daemon feeds


@pytest.fixture(scope="module")
def piper():
    from edgecall.speech.piper import PiperVoice

    voice = REPO / "models" / "voice-en-joe"
    if not (voice / "manifest.json").is_file():
        pytest.skip("Piper voice not built: make voices")
    return PiperVoice(voice)


def spoken(piper, text: str) -> np.ndarray:
    from edgecall.speech.synth import to_call_pcm

    return np.frombuffer(to_call_pcm(piper.synthesize(text), piper.sample_rate), "<i2")


class CountingEngine:
    """The shared Whisper engine, counting its decodes."""

    def __init__(self, engine) -> None:
        self.engine, self.decodes = engine, 0

    def transcribe(self, samples: np.ndarray) -> str:
        self.decodes += 1
        return self.engine.transcribe(samples)


def streamed(audio: np.ndarray, cfg: VadConfig, detector, engine) -> tuple[list, list[int]]:
    """Utterances and the sample (end of the 100 ms chunk) at which each came out."""
    rec = UtteranceRecognizer(
        REPO / "models" / "whisper-tiny-en", vad=cfg, turn_detector=detector, engine=engine
    )
    texts, at = [], []
    for pos in range(0, audio.size, CHUNK):
        for u in rec.accept(audio[pos : pos + CHUNK]):
            texts.append(u.text)
            at.append(min(pos + CHUNK, audio.size))
    return texts + [u.text for u in rec.flush()], at


@pytest.fixture(scope="module")
def engine():
    from edgecall.inference.asr import load_engine

    return load_engine(REPO / "models" / "whisper-tiny-en")


@pytest.mark.parametrize("text", ["How much is it?", "What about the coverage in my area?"])
def test_a_finished_answer_ends_at_the_ask_with_the_words_it_would_have_had(
    piper, detector, engine, text
):
    said = spoken(piper, text)
    audio = np.concatenate([np.zeros(8000, np.int16), said, np.zeros(2 * 16000, np.int16)])
    end = 8000 + int(np.flatnonzero(np.abs(said) > 300)[-1])
    counting = CountingEngine(engine)
    early, early_at = streamed(audio, EARLY, detector, counting)
    usual, usual_at = streamed(audio, CFG, detector, engine)  # the model only holds
    assert early == usual and len(early) == 1
    # ended 192 ms into the pause (plus the VAD's lag and a chunk) instead of 512 ms
    assert (early_at[0] - end) / 16000 < 0.45
    assert (usual_at[0] - early_at[0]) / 16000 >= 0.2
    assert counting.decodes == 1  # the words decoded at the ask are the turn's


def test_a_pause_after_a_filler_is_still_held_with_early_ends_on(piper, detector, engine):
    first, second = spoken(piper, "I would like to know about, um,"), spoken(piper, "the price.")
    pause = np.zeros(int(0.9 * 16000), np.int16)
    audio = np.concatenate([first, pause, second, np.zeros(2 * 16000, np.int16)])
    texts, _ = streamed(audio, EARLY, detector, engine)
    assert len(texts) == 1, texts
