"""config.yaml: the shipped file is valid, and every mistake is reported with its line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from edgecall.config.base import SecretError, SecretRef
from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig

REPO = Path(__file__).resolve().parents[2]


def _models(model: type[BaseModel], seen: set) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                _models(tp, seen)
            stack.extend(typing.get_args(tp))


def test_every_config_field_has_a_description():
    models: set = set()
    _models(EdgecallConfig, models)
    assert len(models) > 20
    undocumented = [
        f"{m.__name__}.{name}"
        for m in models
        for name, f in m.model_fields.items()
        if not (f.description and f.description.strip())
    ]
    assert undocumented == []


def test_shipped_config_is_valid_and_matches_the_spec_defaults(shipped_config):
    rules = shipped_config.rules
    assert (rules.emotion.text_weight, rules.emotion.acoustic_weight) == (0.4, 0.6)
    assert (rules.intent.negative_max, rules.intent.positive_min) == (0.36, 0.64)
    assert (rules.poor_signal.window_samples, rules.poor_signal.min_poor_samples) == (5, 3)
    assert rules.poor_signal.min_quality_dbm == -120
    assert rules.redial.normal_quality_dbm == -100
    assert rules.redial.scene_delays["elevator"].min_s == 60
    assert rules.redial.scene_delays["elevator"].max_s == 180
    assert rules.redial.scene_delays["tunnel"].max_s == 900
    assert set(shipped_config.languages) == {"zh", "en"}
    assert {"price"} <= set(shipped_config.topics)
    price = shipped_config.topics["price"].synonyms
    assert {"多少钱", "价格", "费用", "贵"} <= set(price["zh"])
    assert {"price", "cost", "expensive"} <= set(price["en"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped config with one edit, as a technician would make it."""
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    assert old in text, old
    return write(tmp_path, text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def errors(path: Path) -> list:
    with pytest.raises(ConfigError) as info:
        load_model(path, EdgecallConfig)
    return info.value.issues


def test_unknown_key_is_reported_on_its_line_with_a_suggestion(tmp_path):
    path = shipped_with(tmp_path, "  keepalive_s: 30", "  keepalive_sec: 30")
    (issue,) = errors(path)
    assert issue.line == line_of(path, "keepalive_sec")
    assert issue.column == 3
    assert issue.field == "mqtt.keepalive_sec"
    assert "did you mean 'keepalive_s'" in issue.message


def test_wrong_type_points_at_the_value_line(tmp_path):
    path = shipped_with(tmp_path, "  window_samples: 5", "  window_samples: five")
    (issue,) = errors(path)
    assert (issue.line, issue.field) == (
        line_of(path, "window_samples: five"),
        "rules.poor_signal.window_samples",
    )
    assert "integer" in issue.message


def test_site_work_settings_are_checked_on_their_lines(tmp_path):
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("    takeover_after_s: 30 ", "    takeover_after_s: 90 ", 1)
    text = text.replace("    session_expiry_s: 86400 ", "    session_expiry_s: 60 ", 1)
    path = write(tmp_path, text)
    (issue,) = errors(path)
    assert issue.field == "mqtt.site_work.session_expiry_s"
    assert issue.line == line_of(path, "session_expiry_s: 60")
    assert "must be longer than takeover_after_s" in issue.message
    path = shipped_with(tmp_path, "    group: null ", "    group: a/b ")
    (issue,) = errors(path)
    assert (issue.field, issue.line) == ("mqtt.site_work.group", line_of(path, "group: a/b"))
    assert "cannot be a topic level" in issue.message


def test_missing_key_points_at_its_section(tmp_path):
    path = shipped_with(tmp_path, '  agent_target: "8000"', "")
    (issue,) = errors(path)
    assert issue.field == "sip.agent_target"
    assert issue.line == line_of(path, "sip:")
    assert issue.message == "required key is missing"


def test_cross_field_check_points_at_the_field(tmp_path):
    path = shipped_with(tmp_path, "    weight_price: 0.1", "    weight_price: 0.2")
    (issue,) = errors(path)
    assert issue.field == "rules.intent.weight_price"
    assert issue.line == line_of(path, "weight_price: 0.2")
    assert "sum to 1" in issue.message


def test_threshold_order_is_checked(tmp_path):
    path = shipped_with(tmp_path, "    positive_min: 0.64", "    positive_min: 0.30")
    (issue,) = errors(path)
    assert issue.field == "rules.intent.positive_min"
    assert "below" in issue.message


def test_unknown_followup_topic_points_into_the_campaign(tmp_path):
    path = shipped_with(
        tmp_path, "      coverage: {text: 我们的5G", "      covrage: {text: 我们的5G"
    )
    (issue,) = errors(path)
    assert issue.field == "campaigns.retail-zh.followups.covrage"
    assert issue.line == line_of(path, "covrage:")


def test_several_errors_are_all_reported_in_line_order(tmp_path):
    path = shipped_with(tmp_path, "  keepalive_s: 30", "  keepalive_s: -1")
    text = path.read_text(encoding="utf-8").replace(
        "  max_concurrent_calls: auto", "  max_calls: auto"
    )
    path.write_text(text, encoding="utf-8")
    issues = errors(path)
    assert [i.field for i in issues] == ["sip.max_calls", "mqtt.keepalive_s"]
    assert issues[0].line < issues[1].line


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("appliance:\n  site_id: [unclosed\n", 3, "YAML syntax"),
        ("appliance: {}\nappliance: {}\n", 2, "duplicate"),
        ("", 1, "empty"),
        ("- just\n- a list\n", 1, "mapping"),
        ("appliance:\n\tsite_id: x\n", 2, "YAML syntax"),
    ],
)
def test_yaml_level_mistakes(tmp_path, text, line, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    (issue,) = errors(path)
    assert issue.line == line
    assert needle in issue.message
    assert str(issue).startswith(f"{path}:{line}:")


def test_missing_file(tmp_path):
    (issue,) = errors(tmp_path / "nope.yaml")
    assert issue.message == "file not found"


def test_bad_regular_expression_in_a_topic(tmp_path):
    path = shipped_with(tmp_path, '"\\\\d", "[一二', '"(\\\\d", "[一二')
    (issue,) = errors(path)
    assert issue.field == "topics.price.answer_patterns"
    assert "regular expression" in issue.message


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgecall.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_check_config_cli_valid(tmp_path):
    secret = "s3cr3t-do-not-print"
    result = run_cli(
        "check-config", str(REPO / "config.yaml"), env={"EDGECALL_SIP_PASSWORD": secret}
    )
    assert result.returncode == 0, result.stderr
    *prompts, summary, capacity = result.stdout.splitlines()
    assert "OK" in summary and "branch-01" in summary
    assert re.search(r"capacity on this machine: \d+ calls at once, \d analysis worker", capacity)
    assert prompts[0] == "campaign retail-zh (zh):"  # then who speaks each prompt
    assert secret not in result.stdout + result.stderr


def test_check_config_cli_reports_every_error_and_exits_2(tmp_path):
    path = shipped_with(tmp_path, "  keepalive_s: 30", "  keepalive_sec: 30")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first == (
        f"{path}:{line_of(path, 'keepalive_sec')}:3: mqtt.keepalive_sec: "
        "unknown key; did you mean 'keepalive_s'?"
    )
    assert "Traceback" not in result.stderr


def test_check_config_warns_about_an_unset_secret_without_failing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "EDGECALL_SIP_PASSWORD"}
    result = subprocess.run(
        [sys.executable, "-m", "edgecall.cli", "check-config", str(REPO / "config.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0
    assert "sip.password: environment variable EDGECALL_SIP_PASSWORD is not set" in result.stderr


def test_secret_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("EC_TEST_SECRET", "from-env")
    assert SecretRef(env="EC_TEST_SECRET").resolve().get_secret_value() == "from-env"
    (tmp_path / "mqtt-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    ref = SecretRef(credential="mqtt-password")
    assert ref.resolve().get_secret_value() == "from-credential"
    assert "from-credential" not in repr(ref.resolve())
    with pytest.raises(SecretError, match="cannot read secret file"):
        SecretRef(file=tmp_path / "absent").resolve()
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", file=tmp_path / "x")


def test_shipped_config_means_the_same_to_yaml_1_1_tools(shipped_config):
    """Technicians' tools may read YAML 1.1, where a bare yes/no/on/off is a boolean."""
    import yaml

    from edgecall.config.loader import read_yaml, to_plain

    ours = to_plain(read_yaml(REPO / "config.yaml"))
    with open(REPO / "config.yaml", encoding="utf-8") as fh:
        theirs = yaml.safe_load(fh)
    assert theirs == ours


def test_auto_capacity_is_what_the_cores_analyse_in_the_costliest_language(tmp_path, monkeypatch):
    from edgecall import capacity

    monkeypatch.setattr(capacity, "cores", lambda: 2)
    shipped = load_model(REPO / "config.yaml", EdgecallConfig)  # zh and en campaigns
    assert shipped.models.workers == 2
    assert shipped.sip.max_concurrent_calls == 2 * capacity.CALLS_PER_CORE["zh"]
    monkeypatch.setattr(capacity, "cores", lambda: 64)
    assert capacity.analysed_calls(64, {"en"}, 64) == 64  # never above the SIP stack's limit
    assert capacity.analysed_calls(1, {"en"}, 64) == capacity.CALLS_PER_CORE["en"]
    assert capacity.analysis_workers() == capacity.MAX_WORKERS


def test_auto_capacity_must_fit_the_rtp_port_range(tmp_path, monkeypatch):
    from edgecall import capacity

    monkeypatch.setattr(capacity, "cores", lambda: 2)
    calls = 2 * capacity.CALLS_PER_CORE["zh"]
    last = 20000 + 2 * (calls - 1) - 1  # room for one call fewer
    path = shipped_with(tmp_path, "  rtp_port_max: 20999", f"  rtp_port_max: {last}")
    (issue,) = errors(path)
    assert issue.field == "sip.rtp_port_max"
    assert f"{calls - 1} RTP/RTCP port pairs" in issue.message
    assert f"max_concurrent_calls ({calls})" in issue.message


def test_a_fixed_call_limit_overrides_auto(tmp_path):
    path = shipped_with(tmp_path, "  max_concurrent_calls: auto", "  max_concurrent_calls: 3")
    assert load_model(path, EdgecallConfig).sip.max_concurrent_calls == 3
    path = shipped_with(tmp_path, "  max_concurrent_calls: auto", "  max_concurrent_calls: 65")
    (issue,) = errors(path)
    assert issue.field.startswith("sip.max_concurrent_calls")
