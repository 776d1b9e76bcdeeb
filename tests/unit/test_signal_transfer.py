"""Sections 3 and 4: transfer to a human, poor-signal sliding window."""

from __future__ import annotations

import pytest

from edgecall.config.rules import PoorSignalRuleConfig, TransferRuleConfig
from edgecall.rules.poor_signal import PoorSignalWindow, first_trigger
from edgecall.rules.transfer import should_transfer

CFG = PoorSignalRuleConfig()


def test_three_of_five_below_fires():
    assert first_trigger([-90, -121, -90, -125, -130], CFG) == 4


def test_two_of_five_does_not_fire():
    assert first_trigger([-90, -121, -90, -125, -90, -90, -90], CFG) is None


def test_exactly_minus_120_is_not_poor():
    assert first_trigger([-120, -120, -120, -120, -120], CFG) is None
    assert first_trigger([-120.5, -120.5, -120.5], CFG) == 2


def test_missing_samples_are_not_poor_but_take_their_second():
    assert first_trigger([-125, None, None, -125, None, -125], CFG) is None
    assert first_trigger([-125, None, -125, -125], CFG) == 3


def test_window_slides_old_poor_samples_out():
    # poor at 0 and 1 leave the window before the third poor one arrives at 6
    assert first_trigger([-125, -125, -90, -90, -90, -90, -125, -90], CFG) is None


def test_fired_window_carries_the_samples():
    w = PoorSignalWindow(CFG)
    results = [w.push(s) for s in [-100, -121, -122, -90, -123]]
    assert results[:4] == [None] * 4
    assert results[4].samples == (-100, -121, -122, -90, -123)
    assert results[4].poor == 3


def test_disabled_rule_never_fires():
    assert first_trigger([-130] * 10, PoorSignalRuleConfig(enabled=False)) is None


TR = TransferRuleConfig()


@pytest.mark.parametrize(
    ("intents", "emotions", "expected"),
    [
        ([0, 1, 1], [1, -1, -1], True),  # exactly 2 and 2, positive before
        ([1, 1, 1, 1], [0, 1, -1, -1], True),
        ([0, 0, 1], [1, -1, -1], False),  # intent positive for only 1 turn
        ([0, 1, 1], [1, 0, -1], False),  # emotion negative for only 1 turn
        ([1, 1, 1], [0, -1, -1], False),  # never positive before
        ([1, 1, 1, 1], [1, -1, 0, -1], False),  # streak interrupted
        ([1], [-1], False),
        ([], [], False),
    ],
)
def test_transfer_rule(intents, emotions, expected):
    assert should_transfer(intents, emotions, TR) is expected


def test_transfer_without_prior_positive_requirement():
    cfg = TransferRuleConfig(require_prior_positive_emotion=False)
    assert should_transfer([1, 1], [-1, -1], cfg)
    assert not should_transfer([1, 1], [-1, -1], TransferRuleConfig(enabled=False))
