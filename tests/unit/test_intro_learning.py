"""Failure factors change the product introduction (call-rules section 6, seed 000 §6):
plain-data histories whose right answer is known, through the daemon's own glue."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest

from edgecall.history import MIGRATIONS, SCHEMA_VERSION, History
from edgecall.learning import INTRO_CHANGE_SCHEMA, Learning
from edgecall.messages import Identity
from edgecall.mqtt.commands import CommandRequest
from edgecall.rules.failure_factors import analyse, intro_change, promoted_intro
from edgecall.validation import validator
from tests.unit.test_dialer import FakeLink

T0 = 1_800_000_000.0


def learning_box(history: History, cfg, clock) -> SimpleNamespace:
    """The learning loops on a history, publishing to a fake link; `renewed` counts the
    times new calls were given what was learned."""
    box = SimpleNamespace(history=history, link=FakeLink(), clock=clock, renewed=0, cfg=cfg)

    def renew() -> None:
        box.renewed += 1

    box.learning = Learning(
        history, Identity("site-1", "box-1"), box.link, config=lambda: box.cfg, renew=renew
    )
    return box


@pytest.fixture
def app(tmp_path, shipped_config):
    clock = [T0]
    history = History(tmp_path / "history.sqlite", keep_days=90, clock=lambda: clock[0])
    return learning_box(history, shipped_config, clock)


def fail_calls(app, topics, campaign="retail-en"):
    """Failed calls, one per topic (None: no topic factor), each a second apart."""
    for topic in topics:
        app.clock[0] += 1
        call_id = f"c{app.clock[0]:.0f}"
        ts = "2027-01-15T08:00:00.000Z"
        app.history.record(
            {
                "schema": "edgecall.event/1",
                "type": "call.started",
                "call_id": call_id,
                "campaign": campaign,
                "remote": "+15550100001",
                "ts": ts,
            }
        )
        app.history._db.execute(
            "UPDATE calls SET started = ? WHERE call_id = ?", (app.clock[0], call_id)
        )
        app.history.record(
            {
                "schema": "edgecall.outcome/1",
                "call_id": call_id,
                "outcome": "failed",
                "factor_topic": topic,
            }
        )


def intro_of(app, campaign="retail-en") -> str:
    """What a new call of the campaign hears as the product introduction."""
    return app.learning.prompts(app.cfg).campaigns[campaign].prompts["product_intro"].text


def learned(app):
    return [m for topic, m in app.link.published if topic == "learning"]


async def test_a_dominant_factor_goes_first_in_the_intro_of_new_calls(app, shipped_config):
    configured = shipped_config.campaigns["retail-en"].prompts["product_intro"].text
    fail_calls(app, ["contract"] * 6 + ["price"] * 2 + ["data"] * 2)
    await app.learning.review_intro("retail-en")
    (change,) = learned(app)
    validator("intro-change.json").validate(change)
    assert change["schema"] == INTRO_CHANGE_SCHEMA
    assert (change["campaign"], change["topic"]) == ("retail-en", "contract")
    explanation = shipped_config.topics["contract"].explanation["en"]
    assert change["text"] == f"{explanation} {configured}" == intro_of(app)
    assert change["previous_text"] == configured
    assert change["evidence"] == {
        "failed_calls": 10,
        "shares": {"contract": 0.6, "price": 0.2, "data": 0.2},
        "relative_lead": 2.0,
    }
    assert intro_of(app, "retail-zh") == (
        shipped_config.campaigns["retail-zh"].prompts["product_intro"].text
    )
    await app.learning.review_intro("retail-en")  # the same evidence: nothing new to say
    assert len(learned(app)) == 1
    assert app.renewed == 1
    # a restarted daemon (new loops on the same history) keeps the learned intro
    again = learning_box(app.history, shipped_config, app.clock)
    assert intro_of(again) == change["text"]


@pytest.mark.parametrize(
    "topics",
    [
        ["contract"] * 6 + ["price"] * 3,  # 9 failed calls: fewer than min_failed_calls
        ["contract"] * 4 + ["price"] * 3 + ["data"] * 3,  # lead 33 %: not over 50 %
        ["contract"] * 5 + ["price"] * 5,  # a tie
        [None] * 12,  # failures without a topic factor
    ],
)
async def test_no_change_without_a_clear_lead(app, topics):
    fail_calls(app, topics)
    before = intro_of(app)
    await app.learning.review_intro("retail-en")
    assert learned(app) == [] and intro_of(app) == before


async def test_head_office_reverts_it_and_only_new_failures_count_after(app, shipped_config):
    configured = shipped_config.campaigns["retail-en"].prompts["product_intro"].text
    fail_calls(app, ["contract"] * 10)
    await app.learning.review_intro("retail-en")
    app.clock[0] += 1
    reply = await app.learning.intro_revert(
        CommandRequest("intro-revert", "r-1", {"campaign": "retail-en"})
    )
    assert reply == {"reverted": True, "text": configured}
    assert intro_of(app) == configured
    revert = learned(app)[-1]
    assert (revert["topic"], revert["text"], revert["evidence"]["request_id"]) == (
        None,
        configured,
        "r-1",
    )
    await app.learning.review_intro("retail-en")  # the old failures no longer count
    assert len(learned(app)) == 2
    fail_calls(app, ["price"] * 10)
    await app.learning.review_intro("retail-en")
    assert learned(app)[-1]["topic"] == "price"
    assert intro_of(app).startswith(shipped_config.topics["price"].explanation["en"])
    nothing = await app.learning.intro_revert(
        CommandRequest("intro-revert", "r-2", {"campaign": "retail-zh"})
    )
    assert nothing == {"reverted": False}


def test_the_pure_rules_on_plain_data(shipped_config):
    rules = shipped_config.rules.failure_factors
    # the spec's figures: 41.3 % against 22.5 % leads by 83.6 %; 28.6 % against 25.4 % by 12.6 %
    leads = ["price"] * 413 + ["data"] * 225 + ["contract"] * 200 + ["coverage"] * 162
    assert analyse(leads, rules).promote == "price"
    close = ["price"] * 286 + ["data"] * 254 + ["contract"] * 240 + ["coverage"] * 220
    assert analyse(close, rules).promote is None
    assert intro_change(analyse(["data"] * 10, rules), None) == "data"
    assert intro_change(analyse(["data"] * 10, rules), "data") is None
    assert promoted_intro("您想试试吗？", "无合约期。", "zh") == "无合约期。您想试试吗？"
    assert promoted_intro("Try it?", "No contract.", "en") == "No contract. Try it?"


def test_a_version_1_history_is_upgraded_in_place(tmp_path):
    path = tmp_path / "history.sqlite"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO calls(call_id, started, outcome) VALUES ('old', 1.0, 'completed')")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    h = History(path, keep_days=3650, clock=lambda: 2.0)
    assert h._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert h._db.execute("SELECT call_id, outcome FROM calls").fetchall() == [("old", "completed")]
    assert h.learned_intro("retail-en") is None
