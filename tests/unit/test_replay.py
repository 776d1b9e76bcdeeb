"""`edgecall replay`: the example calls produce the outcomes they are named for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgecall.config.loader import ConfigError
from edgecall.replay import load_replay, run_replay
from edgecall.rules.scene import SceneGuess
from edgecall.validation import schema_errors

CALLS = Path(__file__).resolve().parents[1] / "data" / "calls"
REPO = Path(__file__).resolve().parents[2]

EXPECTED = {
    "transfer": "transferred",
    "poor-signal": "poor_signal_hangup",
    "redial-reason": "redial_scheduled",
    "redial-scene": "redial_scheduled",
    "completed": "completed",
    "failed": "failed",
    "abandoned": "abandoned",
}


def replay(shipped_config, name, classifier=None):
    path = CALLS / f"{name}.yaml"
    return run_replay(load_replay(path), shipped_config, call_id=name, classifier=classifier)[0]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_example_call(shipped_config, kind, lang):
    messages = replay(shipped_config, f"{kind}-{lang}")
    outcome = messages[-1].body
    assert messages[-1].kind == "outcome"
    assert outcome["outcome"] == EXPECTED[kind]
    assert outcome["language"] == lang
    assert sum(m.kind == "outcome" for m in messages) == 1
    for m in messages:
        assert schema_errors(m.body) == []


def test_every_outcome_kind_has_examples_in_both_languages():
    names = {p.stem for p in CALLS.glob("*.yaml")}
    assert {f"{k}-{lang}" for k in EXPECTED for lang in ("zh", "en")} <= names


def test_failed_call_names_its_influencing_factor(shipped_config):
    for lang in ("zh", "en"):
        outcome = replay(shipped_config, f"failed-{lang}")[-1].body
        assert (outcome["factor"], outcome["factor_rule"]) == (
            "price",
            "shared_by_previous_and_current_utterance",
        )


def test_redial_by_stated_reason(shipped_config):
    zh = replay(shipped_config, "redial-reason-zh")[-1].body
    assert (zh["scene"], zh["decided_by"]) == ("elevator", "stated_reason")
    assert 60 <= zh["delay_s"] <= 180
    assert zh["due"] > "2026-01-05T09:00:14"


def test_redial_by_scene_model(shipped_config):
    class Elevator:
        def classify(self, trace):
            assert len(trace) == 18 and trace[0] == -84
            return SceneGuess("elevator", 0.97)

    outcome = replay(shipped_config, "redial-scene-en", Elevator())[-1].body
    assert (outcome["scene"], outcome["decided_by"]) == ("elevator", "scene_model")
    assert outcome["scene_confidence"] == 0.97


def test_poor_signal_window_and_sms(shipped_config):
    zh = replay(shipped_config, "poor-signal-zh")
    outcome = zh[-1].body
    # trace -95, -96, -97, -121, -124, -110, -126: the third poor sample arrives at second 7
    assert outcome["window"] == [-97, -121, -124, -110, -126]
    assert outcome["poor"] == 3
    assert outcome["sms"]["sent"] is True and "5G畅享套餐" in outcome["sms"]["text"]
    en = replay(shipped_config, "poor-signal-en")[-1].body
    assert en["sms"]["sent"] is False
    prompts = [m.body for m in zh if m.body.get("type") == "prompt"]
    assert prompts[-1]["situation"] == "network_problem"


def test_bad_replay_file_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "direction: outbound\nturns:\n  - {at_s: 5, caller: hi}\n  - {at_s: 2, caller: hello}\n"
        "hangup: {by: caller, at_s: 9}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_replay(path)
    (issue,) = info.value.issues
    assert (issue.line, issue.field) == (4, "turns[1].at_s")


def test_replay_cli_prints_json_lines_and_exits_2_on_bad_input(tmp_path):
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecall.cli",
            "replay",
            "--config",
            str(REPO / "config.yaml"),
            str(CALLS / "completed-en.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    lines = [json.loads(x) for x in good.stdout.splitlines()]
    assert lines[-1]["kind"] == "outcome" and lines[-1]["message"]["outcome"] == "completed"
    assert '"outcome": "completed"' in good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("hangup: {by: somebody, at_s: 1}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecall.cli",
            "replay",
            "--config",
            str(REPO / "config.yaml"),
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:1:")
    assert "hangup.by" in result.stderr and "Traceback" not in result.stderr
