"""What the README shows a technician is what the program prints."""

from __future__ import annotations

import re
from pathlib import Path

from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig

REPO = Path(__file__).resolve().parents[2]


def test_readme_check_config_example_matches_real_output(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"/etc/edgecall/config\.yaml:(\d+):(\d+): (\S+): (.+)", readme)
    assert shown, "README lost its check-config example"
    line, col, field, message = int(shown[1]), int(shown[2]), shown[3], shown[4]
    typo = field.rsplit(".", 1)[1]  # e.g. register_expiry
    good = re.search(r"did you mean '([^']+)'", message)[1]  # e.g. register_expiry_s
    path = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace(f"  {good}:", f"  {typo}:", 1), encoding="utf-8")
    try:
        load_model(path, EdgecallConfig)
    except ConfigError as exc:
        (issue,) = exc.issues
    else:
        raise AssertionError("the README's typo is not an error")
    assert (issue.line, issue.column, issue.field, issue.message) == (line, col, field, message)


def test_readme_flow_example_matches_real_output(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"\nconfig\.yaml:(\d+):(\d+): (\S+): (no node '(\w+)'.*)", readme)
    assert shown, "README lost its flow example"
    line, col, field, message, typo = int(shown[1]), int(shown[2]), shown[3], shown[4], shown[5]
    node = field.split(".")[4]  # campaigns.<campaign>.flow.nodes.<node>.on.<answer>
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    campaign = text.index(f"  {field.split('.')[1]}:")
    at = text.index(f"        {node}:", campaign)
    edge = text.index(f'"{field.rsplit(".", 1)[1]}": ', at)
    target = text[edge:].split(": ", 1)[1].split(",", 1)[0]
    path = tmp_path / "config.yaml"
    path.write_text(text[:edge] + text[edge:].replace(target, typo, 1), encoding="utf-8")
    try:
        load_model(path, EdgecallConfig)
    except ConfigError as exc:
        (issue,) = exc.issues
    else:
        raise AssertionError("the README's flow mistake is not an error")
    assert (issue.line, issue.column, issue.field, issue.message) == (line, col, field, message)
