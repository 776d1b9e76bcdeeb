"""Customer lists (issue 18 part 1): CSV with the seed's features into the history,
bad rows reported by line and column and skipped, one customer per number, from the
command line and the list-import command; erased with the person by forget."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from edgecall.appliance import Appliance
from edgecall.customers import COLUMNS, Customer, ListFileError, RowError, lines, parse, read_list
from edgecall.history import History
from edgecall.mqtt.commands import CommandError, CommandRequest
from tests.unit.test_config import REPO, run_cli

GOOD = (
    "number,customer_id,name,group,language,total_spend,purchase_count,last_purchase,"
    "categories,clicks,page_time_s,campaigns_joined,call_duration_s,satisfaction,"
    "answer_slots,open_rate,join_rate\n"
    "+8613800000001,c-1,Li Wei,budget,zh,1200.5,3,2026-10-02,phones; plans,14,320,2,95,4.5,"
    "evening;weekend,0.4,0.1\n"
)


def items(text: str) -> list:
    return list(parse(lines(text)))


def test_a_row_with_every_feature_is_read_into_its_parts():
    (c,) = items(GOOD)
    assert isinstance(c, Customer) and (c.line, c.number, c.key) == (
        2,
        "+8613800000001",
        "+8613800000001",
    )
    assert c.identity == {
        "customer_id": "c-1",
        "name": "Li Wei",
        "group": "budget",
        "language": "zh",
    }
    assert c.features == {
        "total_spend": 1200.5,
        "purchase_count": 3,
        "last_purchase": "2026-10-02",
        "categories": ["phones", "plans"],
        "clicks": 14,
        "page_time_s": 320.0,
        "campaigns_joined": 2,
        "call_duration_s": 95.0,
        "satisfaction": 4.5,
        "answer_slots": ["evening", "weekend"],
        "open_rate": 0.4,
        "join_rate": 0.1,
    }
    (only,) = items("number\n13800000002\n")  # every other column may be missing
    assert only.features == {} and only.identity == {}


@pytest.mark.parametrize(
    ("row", "line", "column", "says"),
    [
        ("call me,,", 2, "number", "not a number to dial"),
        ("13800000002,-5,", 2, "total_spend", "0 or more"),
        ("13800000002,5,2026-13-01", 2, "last_purchase", "not a date (YYYY-MM-DD)"),
        ("13800000002,lots,", 2, "total_spend", "'lots': not a number"),
        ("13800000002,nan,", 2, "total_spend", "'nan': not a number"),
        ("13800000002,5", 2, None, "2 fields, the header names 3"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_and_column(row, line, column, says):
    (problem,) = items(f"number,total_spend,last_purchase\n{row}\n")
    assert isinstance(problem, RowError)
    assert (problem.line, problem.column) == (line, column) and says in problem.message


def test_rates_groups_and_languages_are_checked():
    text = (
        "number,open_rate,group,language\n1380001,1.5,,\n1380002,,bad group!,\n"
        "1380003,,,fr\n\n1380004,0.5,vip,en\n"
    )
    found = items(text)
    assert [(type(x).__name__, x.line) for x in found] == [
        ("RowError", 2),
        ("RowError", 3),
        ("RowError", 4),
        ("Customer", 6),  # the blank line 5 is skipped, the numbering kept
    ]
    assert [x.column for x in found[:3]] == ["open_rate", "group", "language"]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("number,total_spent\n", "unknown column 'total_spent'"),
        ("customer_id,name\n", "no 'number' column"),
        ("number,number\n", "named twice"),
        ("", "empty"),
    ],
)
def test_a_header_that_would_lose_data_rejects_the_file(header, says):
    with pytest.raises(ListFileError, match=says) as caught:
        items(header + "1380001\n" if header else "")
    if "unknown" in says:
        assert all(c in str(caught.value) for c in COLUMNS)  # the known columns are listed


def test_customers_are_kept_one_per_number_and_updated_on_reimport(tmp_path):
    h = History(tmp_path / "history.sqlite", keep_days=90)
    store = lambda batch: h.store_customers(batch, "retail-zh", "october")  # noqa: E731
    text = "number,name\n+86 138 0000 0001,A\n13800000002,B\nnope,C\n+8613800000001,A2\n"
    report = read_list(lines(text), store, batch=2)
    assert (report.rows, report.imported, report.updated, len(report.errors)) == (4, 2, 1, 1)
    assert [str(d) for d in report.duplicates] == [
        "line 5, column number: same number as line 2: kept this row"
    ]
    assert h.customer_lists() == {"retail-zh": {"october": 2}}
    (name,) = h._db.execute("SELECT name FROM customers WHERE number = '+8613800000001'")
    assert name == ("A2",)
    again = read_list(lines("number,name\n13800000002,B2\n13800000003,C\n"), store)
    assert (again.imported, again.updated) == (1, 1)
    h.forget("138-0000-0002")
    assert h.customer_lists()["retail-zh"]["october"] == 2
    assert h.summary()["customer_lists"] == {"retail-zh": {"october": 2}}


def test_campaign_import_on_the_command_line(tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "config.yaml"
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("/var/lib/edgecall", str(state), 1), encoding="utf-8")
    good = tmp_path / "list.csv"
    good.write_text(GOOD + "13800000009,c-9,,,,,,,,,,,,,,,\n", encoding="utf-8")
    done = run_cli(
        "campaign", "import", str(good), "--campaign", "retail-zh", "--config", str(config)
    )
    assert done.returncode == 0, done.stderr
    assert "2 new and 0 updated customers in list 'default'" in done.stdout
    assert "2 rows" in done.stderr and "rows/s" in done.stderr  # progress
    bad = tmp_path / "bad.csv"
    bad.write_text("number,satisfaction\n13800000010,9\n13800000011,3\n", encoding="utf-8")
    shown = run_cli(
        "campaign",
        "import",
        str(bad),
        "--campaign",
        "retail-zh",
        "--list",
        "b",
        "--config",
        str(config),
    )
    assert shown.returncode == 2
    assert f"{bad}:2: satisfaction: '9': must be between 0 and 5" in shown.stdout
    assert "1 new and 0 updated" in shown.stdout and "1 rows skipped" in shown.stdout
    typo = tmp_path / "typo.csv"
    typo.write_text("number,satisfacton\n", encoding="utf-8")
    rejected = run_cli(
        "campaign", "import", str(typo), "--campaign", "retail-zh", "--config", str(config)
    )
    assert rejected.returncode == 2 and "unknown column 'satisfacton'" in rejected.stderr
    unknown = run_cli(
        "campaign", "import", str(good), "--campaign", "nope", "--config", str(config)
    )
    assert unknown.returncode == 2 and "no campaign 'nope'" in unknown.stderr
    stats = json.loads(run_cli("stats", "--json", "--config", str(config)).stdout)
    assert stats["customer_lists"] == {"retail-zh": {"default": 2, "b": 1}}


async def test_the_list_import_command_takes_a_list_in_parts(tmp_path, shipped_config):
    app = Appliance(tmp_path / "config.yaml", shipped_config, notifier=None)
    history = History(tmp_path / "history.sqlite", keep_days=90)
    app.learning = SimpleNamespace(require_history=lambda: history)
    parts = ["number,group\n13800000001,vip\n13800000002,\n", "number,group\n13800000003,x y\n"]
    replies = [
        await app._cmd_list_import(
            CommandRequest(
                "list-import",
                f"r{i}",
                {"campaign": "retail-zh", "csv": text, "part": i + 1, "parts": 2},
            )
        )
        for i, text in enumerate(parts)
    ]
    assert [(r["part"], r["imported"], r["skipped"]) for r in replies] == [(1, 2, 0), (2, 0, 1)]
    assert replies[1]["errors"] == [
        {
            "line": 2,
            "column": "group",
            "error": "'x y': letters, digits, '_', '.' and '-' only, up to 64",
        }
    ]
    assert replies[1]["lists"] == {"default": 2}
    with pytest.raises(CommandError, match="unknown column"):
        await app._cmd_list_import(
            CommandRequest("list-import", "r9", {"campaign": "retail-zh", "csv": "num\n1\n"})
        )
    with pytest.raises(CommandError, match="no campaign"):
        await app._cmd_list_import(
            CommandRequest("list-import", "r8", {"campaign": "x", "csv": "number\n1\n"})
        )
