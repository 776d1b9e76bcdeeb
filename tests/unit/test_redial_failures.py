"""Sections 5 and 6: redial scheduling by stated reason or scene, failure factors."""

from __future__ import annotations

import pytest

from edgecall.config.rules import FailureFactorRuleConfig
from edgecall.rules.failure_factors import analyse, relative_lead
from edgecall.rules.redial import decide_redial, draw_delay, global_quality
from edgecall.rules.scene import SceneGuess


class RecordingClassifier:
    """A stand-in scene model that records what it was asked."""

    def __init__(self, scene: str, confidence: float) -> None:
        self.guess = SceneGuess(scene, confidence)
        self.calls: list[list] = []

    def classify(self, trace_dbm):
        self.calls.append(list(trace_dbm))
        return self.guess


def decide(cfg, classifier=None, **kw):
    args = dict(
        call_id="c1",
        quality=-110.0,
        emotion=1,
        intent=0,
        utterances=["好的"],
        trace=[-110.0] * 10,
        language="zh",
        cfg=cfg,
        classifier=classifier,
    )
    args.update(kw)
    return decide_redial(**args)


@pytest.fixture
def redial_cfg(shipped_config):
    return shipped_config.rules.redial


def test_stated_reason_overrides_the_scene_model(redial_cfg):
    model = RecordingClassifier("tunnel", 0.99)
    r = decide(redial_cfg, model, utterances=["好的", "我在电梯里，等一下"])
    assert (r.scene, r.decided_by, r.stated_phrase) == ("elevator", "stated_reason", "在电梯")
    assert 60 <= r.delay_s <= 180
    assert model.calls == []


def test_english_stated_reason(redial_cfg):
    r = decide(redial_cfg, language="en", utterances=["Sorry, I'm driving right now."])
    assert (r.scene, r.decided_by) == ("driving", "stated_reason")
    assert 900 <= r.delay_s <= 1800


def test_scene_model_decides_without_a_reason(redial_cfg):
    model = RecordingClassifier("basement", 0.9)
    trace = [-90.0, None, -118.0]
    r = decide(redial_cfg, model, trace=trace)
    assert (r.scene, r.decided_by, r.confidence) == ("basement", "scene_model", 0.9)
    assert 480 <= r.delay_s <= 900
    assert model.calls == [trace]


def test_unconfident_model_falls_back_to_unknown(redial_cfg):
    r = decide(redial_cfg, RecordingClassifier("elevator", 0.3))
    assert (r.scene, r.decided_by) == ("unknown", "default")


def test_quality_exactly_at_normal_threshold_is_not_poor(redial_cfg):
    assert decide(redial_cfg, quality=-100.0) is None
    assert decide(redial_cfg, quality=-100.01) is not None


def test_no_interest_no_redial(redial_cfg):
    assert decide(redial_cfg, emotion=0, intent=0) is None
    assert decide(redial_cfg, emotion=-1, intent=1) is not None


def test_no_quality_samples_no_redial(redial_cfg):
    assert decide(redial_cfg, quality=None) is None


def test_delay_is_within_range_and_fixed_per_call(redial_cfg):
    rng = redial_cfg.scene_delays["basement"]
    delays = {draw_delay(rng, f"call-{i}") for i in range(200)}
    assert min(delays) >= 480 and max(delays) <= 900
    assert len(delays) > 50  # spread, not one value
    assert draw_delay(rng, "call-7") == draw_delay(rng, "call-7")


def test_global_quality_ignores_missing():
    assert global_quality([-100, None, -110]) == -105.0
    assert global_quality([None, None]) is None


def test_seed_relative_lead_examples():
    assert relative_lead(0.413, 0.225) == pytest.approx(0.836, abs=1e-3)
    assert relative_lead(0.286, 0.254) == pytest.approx(0.126, abs=1e-3)


def factors(**counts):
    return [name for name, n in counts.items() for _ in range(n)]


def test_seed_failure_factor_yes():
    result = analyse(
        factors(price=413, data=225, contract=200, coverage=162), FailureFactorRuleConfig()
    )
    assert result.shares[0] == ("price", 0.413)
    assert result.promote == "price"


def test_seed_failure_factor_no():
    result = analyse(
        factors(price=286, data=254, contract=230, coverage=230), FailureFactorRuleConfig()
    )
    assert result.relative_lead == pytest.approx(0.126, abs=1e-3)
    assert result.promote is None


def test_failure_factor_boundary_and_minimum():
    cfg = FailureFactorRuleConfig()
    # exactly 50 % larger is not "more than 50 %"
    assert analyse(factors(price=15, data=10), cfg).promote is None
    assert analyse(factors(price=16, data=10), cfg).promote == "price"
    assert analyse(factors(price=5), cfg).promote is None  # fewer than 10 failed calls
    assert analyse(factors(price=12) + [None] * 3, cfg).promote == "price"
    assert analyse([None] * 20, cfg).promote is None
