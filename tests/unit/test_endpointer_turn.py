"""The endpointer's hold on hesitation, as pure logic: a stand-in turn model."""

from __future__ import annotations

import numpy as np
import pytest

from edgecall.config.models import VadConfig
from edgecall.inference.asr import SAMPLE_RATE, VAD_WINDOW, Endpointer, TurnVerdict
from edgecall.inference.turn import transcript_ends_turn, transcript_finished

CFG = VadConfig(
    min_silence_ms=500, min_speech_ms=64, end_of_turn={"model": "smart-turn", "ask_ms": 400}
)


def windows(ms: float, p: float) -> np.ndarray:
    return np.full(int(ms * SAMPLE_RATE / 1000 / VAD_WINDOW), p, dtype=np.float32)


class Model:
    def __init__(self, answer: float) -> None:
        self.answer, self.asked = answer, []

    def __call__(self, start: int, now: int) -> float:
        self.asked.append((start, now))
        return self.answer


def test_a_hesitating_caller_keeps_the_turn_through_a_longer_pause():
    model = Model(0.02)
    ep = Endpointer(CFG, turn=model)
    assert ep.feed(windows(1000, 0.9)) == []
    assert ep.feed(windows(1200, 0.0)) == []  # 1.2 s of silence: still held
    assert len(model.asked) == 1 and ep.held == 1
    (start, now) = model.asked[0]
    assert start == 0 and (now - start) / SAMPLE_RATE == pytest.approx(1.0 + 0.4, abs=0.04)
    assert ep.feed(windows(800, 0.9)) == []  # the caller goes on: one turn
    done = ep.feed(windows(1600, 0.0))
    assert len(done) == 1 and done[0][0] == 0
    assert len(model.asked) == 2  # asked again in the new pause


def test_a_finished_turn_ends_after_the_usual_silence():
    model = Model(0.9)
    ep = Endpointer(CFG, turn=model)
    ep.feed(windows(1000, 0.9))
    done = ep.feed(windows(600, 0.0))
    assert len(done) == 1 and ep.held == 0 and len(model.asked) == 1


def test_without_a_model_nothing_changes():
    ep = Endpointer(CFG)
    ep.feed(windows(1000, 0.9))
    assert len(ep.feed(windows(600, 0.0))) == 1


def test_the_model_must_be_asked_before_the_turn_would_end():
    with pytest.raises(ValueError, match="must be below min_silence_ms"):
        VadConfig(min_silence_ms=500, end_of_turn={"model": "smart-turn", "ask_ms": 500})
    VadConfig(min_silence_ms=500, end_of_turn={"ask_ms": 600})  # no model: not checked


def test_check_config_verifies_the_turn_model(tmp_path):
    from tests.unit.test_config import line_of, run_cli
    from tests.unit.test_model_files import SECRET, _edit, _here

    path = _edit(_here(tmp_path), "      model: smart-turn ", "      model: smart-trun ")
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 2
    line = line_of(path, "model: smart-trun")
    assert f"{path}:{line}:7: models.vad.end_of_turn.model: " in result.stderr
    assert "smart-trun/manifest.json: manifest missing" in result.stderr
    assert run_cli("check-config", str(_here(tmp_path)), env=SECRET).returncode == 0
    off = _edit(_here(tmp_path), "      model: smart-turn ", "      model: null ")
    assert run_cli("check-config", str(off), env=SECRET).returncode == 0


# --- judging a pause with the transcript too (what the recogniser passes) ------------

EARLY = VadConfig(
    min_silence_ms=500,
    min_speech_ms=64,
    end_of_turn={
        "model": "smart-turn",
        "ask_ms": 192,
        "hold_below": 0.05,
        "hold_open_below": 0.5,
        "hold_ms": 1500,
        "end_above": 0.9,
    },
)


class Judge:
    def __init__(self, probability: float, words_end_turn: bool | None) -> None:
        self.verdict = TurnVerdict(probability, words_end_turn)
        self.asked: list[tuple[int, int]] = []

    def __call__(self, start: int, now: int) -> TurnVerdict:
        self.asked.append((start, now))
        return self.verdict


def ends_after(ep: Endpointer, silence_ms: float) -> float | None:
    """Feed silence window by window; the silence (ms) after which the turn ended."""
    for k in range(1, int(silence_ms * SAMPLE_RATE / 1000 / VAD_WINDOW) + 1):
        if ep.feed(np.zeros(1, dtype=np.float32)):
            return k * VAD_WINDOW * 1000 / SAMPLE_RATE
    return None


def test_a_finished_sentence_the_model_agrees_with_ends_at_the_ask():
    judge = Judge(0.95, True)
    ep = Endpointer(EARLY, turn=judge)
    ep.feed(windows(1000, 0.9))
    assert ends_after(ep, 3000) == pytest.approx(192)
    assert ep.early == 1 and ep.held == 0 and len(judge.asked) == 1


def test_the_early_turn_ends_where_the_pause_began():
    ep = Endpointer(EARLY, turn=Judge(0.95, True))
    ep.feed(windows(1000, 0.9))
    done = ep.feed(windows(500, 0.0))
    assert len(done) == 1
    start, end = done[0]
    assert start == 0 and end == pytest.approx(1000 * SAMPLE_RATE / 1000, abs=VAD_WINDOW)


@pytest.mark.parametrize(
    ("probability", "text", "silence_ms"),
    [
        (0.95, None, 512),  # no words to go by: the usual silence
        (0.95, False, 512),  # the model says finished, the words do not: not early
        (0.6, True, 512),  # the words say finished, the model is unsure: not early
        (0.3, True, 512),  # a finished sentence is never held, whatever the model says
        (0.01, True, 512),
        (0.3, None, 512),
        (0.3, False, 1504),  # stops mid-phrase and the model agrees: hold
        (0.01, None, 1504),  # a hesitation the model is sure of, words that cannot tell
        (0.6, False, 512),  # stops mid-phrase but the model is fairly sure it is over
    ],
)
def test_only_agreement_ends_a_turn_early_or_holds_it(probability, text, silence_ms):
    ep = Endpointer(EARLY, turn=Judge(probability, text))
    ep.feed(windows(1000, 0.9))
    assert ends_after(ep, 3000) == pytest.approx(silence_ms)


class Verdicts:
    """One verdict per pause, in order."""

    def __init__(self, *verdicts: tuple[float, bool | None]) -> None:
        self.verdicts = [TurnVerdict(p, w) for p, w in verdicts]

    def __call__(self, start: int, now: int) -> TurnVerdict:
        return self.verdicts.pop(0)


@pytest.mark.parametrize(
    ("resumed_ms", "then", "silence_ms"),
    [
        (320, (0.5, None), 1504),  # "about, [held] um [pause]": still looking for the words
        (320, (0.5, True), 512),  # unless the words end the turn
        (1000, (0.5, None), 512),  # a phrase after the held pause: judged on its own
    ],
)
def test_a_pause_right_after_a_filler_that_followed_a_held_pause_is_held_too(
    resumed_ms, then, silence_ms
):
    ep = Endpointer(EARLY, turn=Verdicts((0.3, False), then))
    ep.feed(windows(1000, 0.9))
    assert ep.feed(windows(800, 0.0)) == []  # held
    ep.feed(windows(resumed_ms, 0.9))
    assert ends_after(ep, 3000) == pytest.approx(silence_ms)


def test_speech_after_an_undecided_pause_continues_the_turn_and_is_judged_again():
    judge = Judge(0.95, False)
    ep = Endpointer(EARLY, turn=judge)
    ep.feed(windows(1000, 0.9))
    assert ep.feed(windows(320, 0.0)) == []
    ep.feed(windows(600, 0.9))
    assert len(ep.feed(windows(600, 0.0))) == 1
    assert len(judge.asked) == 2 and ep.early == 0


def test_a_burst_too_short_to_be_speech_is_not_judged():
    judge = Judge(0.95, True)
    ep = Endpointer(EARLY, turn=judge)
    ep.feed(windows(32, 0.9))
    assert ep.feed(windows(600, 0.0)) == [] and judge.asked == []


def test_without_end_above_nothing_ends_early():
    cfg = VadConfig(min_silence_ms=500, end_of_turn={"model": "smart-turn", "ask_ms": 192})
    ep = Endpointer(cfg, turn=Judge(0.99, True))
    ep.feed(windows(1000, 0.9))
    assert ends_after(ep, 3000) == pytest.approx(512)


@pytest.mark.parametrize(
    ("text", "language", "finished"),
    [
        ("How much is it?", "en", True),
        ("Yes, I'm interested. Tell me more.", "en", True),
        ("Sorry, who's calling.", "en", True),
        ("I would like to know about, um.", "en", False),
        ("I would like to know about the.", "en", False),
        ("My current plan costs,", "en", False),
        ("And then...", "en", False),
        ("so I was going to", "en", False),
        ("Thank you.", "en", True),
        ("Yes, I do.", "en", True),
        ("Who is it for?", "en", True),  # a question may end on a preposition
        ("Sorry.", "en", False),  # "Sorry, ..." opens an answer
        ("Sorry?", "en", True),
        ("Hello", "en", None),
        ("", "en", None),
        ("多少钱？", "zh", True),
        ("我想办理一张新的银行卡。", "zh", True),
        ("我想问一下，嗯，", "zh", False),
        ("我想问一下,然后", "zh", False),
        ("我想问一下。", "zh", False),  # the lead-in to a question, whatever Whisper's mark
        ("请问", "zh", False),
        ("I'd like to ask.", "en", False),
        ("Can I ask?", "en", True),
        ("我在开会", "zh", None),  # Whisper's Chinese often has no final mark
    ],
)
def test_what_a_transcript_says_about_the_turn(text, language, finished):
    assert transcript_finished(text, language) is finished


@pytest.mark.parametrize(
    ("text", "language", "ends"),
    [
        ("How much is it?", "en", True),  # a question hands the turn over
        ("Does it have a contract in my area?", "en", True),
        ("Sorry, who's calling.", "en", True),  # a question, whatever Whisper's mark
        ("How much", "en", None),  # no mark at all: Whisper's English has one when done
        ("Sorry, I'm in a meeting right now.", "en", None),
        ("No thanks.", "en", True),  # a short answer
        ("Please stop calling me.", "en", None),  # a statement may go on
        ("Yes, I'm interested.", "en", None),
        ("I would like to know about, um.", "en", False),
        ("多少钱？", "zh", True),
        ("你好请问你是哪位", "zh", True),  # Chinese questions often come without a mark
        ("好的。", "zh", True),
        ("我想办理一张新的银行卡。", "zh", None),
        ("我想问一下，嗯，", "zh", False),
        ("我在开会", "zh", None),
    ],
)
def test_only_a_question_or_a_short_answer_ends_a_turn_early(text, language, ends):
    assert transcript_ends_turn(text, language, max_words=2) is ends


def test_a_longer_answer_ends_early_only_when_allowed_more_words():
    assert transcript_ends_turn("No thanks.", "en", max_words=1) is None
    assert transcript_ends_turn("Please stop calling me.", "en", max_words=4) is True
