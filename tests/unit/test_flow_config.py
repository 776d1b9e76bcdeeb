"""A campaign's flow is checked when the config loads: every mistake with its line."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_config import errors, line_of, shipped_with

EN_OFFER = """        offer:                      # the sale is confirmed here, never assumed
          say: offer
          reask: offer_question
          "on": {"yes": sale, "no": objection, not_interested: objection}
        objection:
          say: objection
          reask: objection_question
          "on": {"yes": offer, interested: offer, "no": declined, not_interested: declined}
        sale: {say: sale_confirmed, end: sale}
        declined: {say: closing, end: declined}
    poor_signal_sms: "Your signal"""


def line_after(path: Path, start: str, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith(start))
    return next(n for n, line in enumerate(lines[first:], first + 1) if needle in line)


def en_flow_with(tmp_path: Path, replacement: str) -> Path:
    return shipped_with(tmp_path, EN_OFFER, replacement + '\n    poor_signal_sms: "Your signal')


def test_a_transition_to_a_node_that_does_not_exist(tmp_path):
    path = en_flow_with(
        tmp_path, EN_OFFER.replace('"yes": sale,', '"yes": sael,').rsplit("\n", 1)[0]
    )
    (issue,) = errors(path)
    assert issue.field == "campaigns.retail-en.flow.nodes.offer.on.yes"
    assert issue.line == line_of(path, '"yes": sael')
    assert "no node 'sael'" in issue.message and "sale" in issue.message


def test_a_prompt_that_does_not_exist(tmp_path):
    text = EN_OFFER.replace("reask: offer_question", "reask: offer_questoin").rsplit("\n", 1)[0]
    path = en_flow_with(
        tmp_path, text.replace("say: objection\n", "say: [objection, objection_b]\n")
    )
    issues = errors(path)
    assert [(i.field, i.line) for i in issues] == [
        ("campaigns.retail-en.flow.nodes.offer.reask", line_of(path, "offer_questoin")),
        ("campaigns.retail-en.flow.nodes.objection.say[1]", line_of(path, "objection_b]")),
    ]
    assert "no prompt 'offer_questoin'" in issues[0].message


def test_a_node_nobody_reaches(tmp_path):
    text = EN_OFFER.rsplit("\n", 1)[0] + "\n        spare: {say: closing, end: declined}"
    path = en_flow_with(tmp_path, text)
    (issue,) = errors(path)
    assert issue.field == "campaigns.retail-en.flow.nodes.spare"
    assert issue.line == line_of(path, "spare:")
    assert "never reached" in issue.message


def test_a_loop_without_exit(tmp_path):
    text = EN_OFFER.replace(
        '"on": {"yes": sale, "no": objection, not_interested: objection}',
        '"on": {"yes": objection, "no": objection}',
    ).replace(
        '"on": {"yes": offer, interested: offer, "no": declined, not_interested: declined}',
        '"on": {"yes": offer, "no": offer}',
    )
    text = text.rsplit("\n", 1)[0].replace("        sale: {say: sale_confirmed, end: sale}\n", "")
    path = en_flow_with(tmp_path, text)
    issues = errors(path)
    loops = [i for i in issues if "loop without exit" in i.message]
    fields = {i.field.rsplit(".", 1)[1] for i in loops}
    assert {"offer", "objection"} <= fields
    for i in loops:
        assert i.line == line_after(path, "  retail-en:", f"        {i.field.rsplit('.', 1)[1]}:")


def test_an_end_node_that_leads_on_and_a_missing_start(tmp_path):
    path = shipped_with(
        tmp_path,
        "        sale: {say: sale_confirmed, end: sale}\n"
        '        declined: {say: closing, end: declined}\n    poor_signal_sms: "Your',
        '        sale: {say: sale_confirmed, end: sale, "on": {"yes": offer}}\n'
        '        declined: {say: closing, end: declined}\n    poor_signal_sms: "Your',
    )
    (issue,) = errors(path)
    assert issue.field == "campaigns.retail-en.flow.nodes.sale.on"
    assert "end node" in issue.message


def test_a_missing_builtin_prompt_is_named(tmp_path):
    path = shipped_with(
        tmp_path,
        '      still_there: {text: "Hello, are you still there?"}\n',
        "",
    )
    (issue,) = errors(path)
    assert issue.field == "campaigns.retail-en.prompts"
    assert "still_there" in issue.message
