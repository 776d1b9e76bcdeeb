"""Section 1: purchase intent (seed formula) and emotion fusion, at their boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecall.config.rules import EmotionRuleConfig, IntentRuleConfig
from edgecall.rules.emotion import fuse, lexicon_score
from edgecall.rules.intent import IntentCounts, intent_tendency, purchase_intent

DEFAULT = IntentRuleConfig()


def test_seed_worked_example_is_exact():
    intent = purchase_intent(IntentCounts(turns=3, positive=2, negative=0, price=0), DEFAULT)
    assert intent.normalised == (0.6, 0.8, 1.0, 0.0)
    assert intent.value == 0.72
    assert intent.tendency == 1


def test_negative_words_lower_the_value():
    none = purchase_intent(IntentCounts(2, 1, 0, 0), DEFAULT).value
    some = purchase_intent(IntentCounts(2, 1, 2, 0), DEFAULT).value
    assert some < none
    assert purchase_intent(IntentCounts(2, 1, 9, 0), DEFAULT).normalised[2] == 0.0


def test_boundary_036_is_negative():
    # One turn, nothing else: 0.3 * 0.2 + 0.3 * 1 = 0.36 exactly (binary float: 0.35999...).
    intent = purchase_intent(IntentCounts(turns=1), DEFAULT)
    assert intent.value == 0.36
    assert intent.tendency == -1


def test_boundary_064_is_positive():
    cfg = IntentRuleConfig(price_cap=2.5)
    # 0.3 * 0.2 + 0.3 * 0.8 + 0.3 * 1 + 0.1 * 0.4 = 0.64
    intent = purchase_intent(IntentCounts(turns=1, positive=2, negative=0, price=1), cfg)
    assert intent.value == 0.64
    assert intent.tendency == 1


@pytest.mark.parametrize(
    ("value", "tendency"),
    [(0.0, -1), (0.36, -1), (0.360001, 0), (0.5, 0), (0.639999, 0), (0.64, 1), (1.0, 1)],
)
def test_intent_cut_points(value, tendency):
    assert intent_tendency(value, DEFAULT) == tendency


@given(
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.floats(0.5, 50),
    st.floats(0.5, 50),
)
def test_intent_is_always_within_0_and_1(turns, pos, neg, price, cap_a, cap_b):
    cfg = IntentRuleConfig(turns_cap=cap_a, positive_cap=cap_b, negative_cap=cap_a, price_cap=cap_b)
    intent = purchase_intent(IntentCounts(turns, pos, neg, price), cfg)
    assert 0.0 <= intent.value <= 1.0
    assert all(0.0 <= n <= 1.0 for n in intent.normalised)
    assert intent.tendency in (-1, 0, 1)


EMO = EmotionRuleConfig()


def test_fusion_weights_text_04_acoustic_06():
    e = fuse(1.0, -0.5, EMO)
    assert e.score == pytest.approx(0.4 * 1.0 + 0.6 * -0.5)
    assert e.sources == ("text", "acoustic")
    assert e.missing == ()


def test_either_source_decides_alone():
    only_text = fuse(-0.9, None, EMO)
    assert (only_text.score, only_text.tendency, only_text.sources) == (-0.9, -1, ("text",))
    assert only_text.missing == ("acoustic",)
    only_audio = fuse(None, 0.5, EMO)
    assert (only_audio.score, only_audio.tendency, only_audio.sources) == (0.5, 1, ("acoustic",))


def test_no_source_is_neutral_and_says_so():
    e = fuse(None, None, EMO)
    assert (e.tendency, e.sources, e.missing) == (0, (), ("text", "acoustic"))


@pytest.mark.parametrize(
    ("score", "tendency"), [(-0.2, -1), (-0.19, 0), (0.0, 0), (0.19, 0), (0.2, 1)]
)
def test_emotion_cut_points(score, tendency):
    assert fuse(score, None, EMO).tendency == tendency


def test_out_of_range_estimate_is_refused():
    with pytest.raises(ValueError, match="outside"):
        fuse(1.5, None, EMO)


def test_lexicon_score():
    from collections import Counter

    assert lexicon_score(Counter()) == 0.0
    assert lexicon_score(Counter(emotion_positive=3, emotion_negative=1)) == 0.5
    assert lexicon_score(Counter(emotion_negative=2)) == -1.0
