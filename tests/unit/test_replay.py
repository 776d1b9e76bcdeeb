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
from edgecall.rules.session import AddToDoNotCall
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
    "declined": "failed",
    "do-not-call": "failed",
    "callback": "redial_scheduled",
    "silence": ("abandoned", "failed"),  # en: silent from the start; zh: after one answer
    "unclear": "failed",
    "human": "transferred",
    "goodbye": "failed",
    "won-back": "completed",
}
# How the flow ended each example (outcome end_reason, or the flow step that ended it).
ENDINGS = {
    "completed": "sale",
    "declined": "declined",
    "do-not-call": "do_not_call",
    "callback": "callback",
    "silence": "silence",
    "unclear": "not_understood",
    "goodbye": "goodbye",
    "won-back": "sale",
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
    expected = EXPECTED[kind]
    assert outcome["outcome"] in (expected if isinstance(expected, tuple) else (expected,))
    assert outcome["language"] == lang
    assert sum(m.kind == "outcome" for m in messages) == 1
    for m in messages:
        assert schema_errors(m.body) == []


def test_every_outcome_kind_has_examples_in_both_languages():
    names = {p.stem for p in CALLS.glob("*.yaml")}
    assert {f"{k}-{lang}" for k in EXPECTED for lang in ("zh", "en")} <= names


def flow_steps(messages):
    return [m.body for m in messages if m.body.get("type") == "flow"]


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", sorted(ENDINGS))
def test_the_flow_ends_each_example_the_way_it_is_named(shipped_config, kind, lang):
    messages = replay(shipped_config, f"{kind}-{lang}")
    steps = flow_steps(messages)
    assert steps[-1]["ending"] == ENDINGS[kind]
    assert [s["ending"] for s in steps[:-1]] == [None] * (len(steps) - 1)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_examples_visit_every_node_and_take_every_answer_of_the_shipped_flow(
    shipped_config, lang
):
    campaign = shipped_config.campaigns[f"retail-{lang}"]
    visited, taken = set(), set()
    for path in CALLS.glob(f"*-{lang}.yaml"):
        node = None
        for step in flow_steps(replay(shipped_config, path.stem)):
            if node is not None and step["node"] != node:
                taken.add((node, step["answer"]))
            visited.add(step["node"])
            node = step["node"]
    assert visited == set(campaign.flow.nodes)
    edges = {(n, a) for n, node in campaign.flow.nodes.items() for a in node.on}
    # 'interested' and 'not_interested' lead where 'yes' and 'no' do in the shipped flows;
    # callers who say yes/no take those, so the intent edges are covered where they differ
    same = {
        (n, a)
        for n, a in edges
        if a in ("interested", "not_interested")
        and campaign.flow.nodes[n].on[a]
        == campaign.flow.nodes[n].on.get("yes" if a == "interested" else "no")
    }
    assert edges - same <= taken, sorted(edges - same - taken)


def test_a_confirmed_sale_is_completed_and_agreed_an_interested_caller_is_not(shipped_config):
    for lang in ("zh", "en"):
        outcome = replay(shipped_config, f"completed-{lang}")[-1].body
        assert (outcome["agreed"], outcome["node"]) == (True, "sale")
        turns = [
            m.body
            for m in replay(shipped_config, f"completed-{lang}")
            if m.body.get("type") == "turn"
        ]
        # the interested caller was offered the plan and asked to confirm before the sale
        assert [t["reply"]["node"] for t in turns] == ["intro", "offer", "sale"]
        declined = replay(shipped_config, f"declined-{lang}")[-1].body
        assert (declined["agreed"], declined["end_reason"]) == (False, "declined")


def test_do_not_call_is_an_action_and_an_event(shipped_config):
    for lang in ("zh", "en"):
        messages, actions = run_replay(
            load_replay(CALLS / f"do-not-call-{lang}.yaml"), shipped_config, call_id="dnc"
        )
        (added,) = [a for a in actions if isinstance(a, AddToDoNotCall)]
        assert added.number.startswith("+")
        (event,) = [m.body for m in messages if m.body.get("type") == "do_not_call"]
        assert event["number"] == added.number


def test_callback_at_the_time_the_caller_named(shipped_config):
    for lang in ("zh", "en"):
        outcome = replay(shipped_config, f"callback-{lang}")[-1].body
        # the call starts 09:00 UTC; with the appliance in Asia/Shanghai 3 pm is 07:00 UTC
        assert outcome["decided_by"] == "caller_time"
        assert outcome["stated_phrase"]


def test_callback_time_follows_the_appliance_time_zone(shipped_config):
    data = shipped_config.model_dump()
    data["appliance"]["timezone"] = "Asia/Shanghai"
    cfg = type(shipped_config).model_validate(data)
    # 09:00 UTC is 17:00 in Shanghai: "after 3" has passed, so tomorrow 15:00 = 07:00 UTC
    outcome = replay(cfg, "callback-en")[-1].body
    assert outcome["due"] == "2026-01-06T07:00:00.000Z"
    data["appliance"]["timezone"] = "UTC"
    outcome = replay(type(shipped_config).model_validate(data), "callback-zh")[-1].body
    assert outcome["due"] == "2026-01-05T15:00:00.000Z"


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


def test_replay_piped_into_head_ends_quietly():
    files = sorted(str(p) for p in CALLS.glob("*.yaml"))  # far more than a pipe buffer holds
    result = subprocess.run(
        f"{sys.executable} -m edgecall.cli replay --quiet --config {REPO / 'config.yaml'} "
        + " ".join(files)
        + " | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["kind"] == "event"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_replay_prints_the_path_through_the_flow(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgecall.cli", "replay", "--config", str(REPO / "config.yaml"),
         str(CALLS / "completed-en.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    path = [line.split(": ", 1)[1] for line in result.stderr.splitlines()][:-1]
    assert path[0].startswith("opening (the call was answered) says opening")
    assert path[-1].startswith("offer -> sale (yes: caller: 'go ahead') says sale_confirmed")
    assert path[-1].endswith("[ends: sale]")
    for line in result.stdout.splitlines():  # stdout stays JSON lines only
        json.loads(line)
