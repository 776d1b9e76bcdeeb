"""Customers' interests from their list features (issue 18 parts 2-3, seed 003 S2-S25):
cleaning and derived features, per-topic gradient boosting with cross-validation and
its explanation, on plain data whose right answer is known; through the history, the
child process and the daemon's dial loop (the customer's group and introduction)."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest

from edgecall.customers import lines, read_list
from edgecall.history import History
from edgecall.interest_training import read_samples, train
from edgecall.interests import MODEL_FILE, InterestModel, InterestModelError, derive, top_interest
from edgecall.learning import GROUP_SCRIPT_SCHEMA
from edgecall.validation import validator
from tests.unit.test_intro_learning import learning_box

TODAY = date(2027, 1, 15)


def population(n: int, seed: int = 1) -> list[tuple[dict, set[str]]]:
    """Budget customers (low spend, prepaid) mostly ask about the price, streamers (high
    spend, video) about data; one in six the other way round; some values missing."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        budget = rng.random() < 0.5
        raw = {
            "total_spend": rng.uniform(0, 300) if budget else rng.uniform(400, 3000),
            "purchase_count": rng.randint(1, 5),
            "categories": ["prepaid"] if budget else ["video"],
            "clicks": rng.randint(0, 40),
        }
        if rng.random() < 0.2:
            del raw["total_spend"]
        wants_price = budget == (rng.random() < 5 / 6)
        out.append((raw, {"price"} if wants_price else {"data"}))
    return out


def test_derived_features_and_missing_values():
    f = derive(
        {
            "total_spend": 120.0,
            "purchase_count": 4,
            "last_purchase": "2027-01-05",
            "open_rate": 0.5,
            "join_rate": 0.2,
            "categories": ["phones"],
            "answer_slots": ["evening"],
        },
        TODAY,
    )
    assert (f["recency_days"], f["mean_spend"], f["responsiveness"]) == (10.0, 30.0, 0.1)
    assert f["category=phones"] == f["slot=evening"] == 1.0
    assert f["missing=clicks"] == 1.0 and "clicks" not in f


def test_the_model_learns_who_cares_about_what_and_says_why():
    model, figures = train(population(400), ["price", "data", "contract"], TODAY)
    assert set(model.topics) == {"price", "data"}
    assert figures["topics"]["contract"]["skipped"] == "0 of 400 named it"
    price = figures["topics"]["price"]
    assert price["cv_log_loss"] < price["base_rate_log_loss"] - 0.1  # far better than guessing
    budget = model.predict({"total_spend": 80, "categories": ["prepaid"]}, TODAY)
    assert top_interest(budget, 0.5)[0] == "price"
    assert budget["price"]["reasons"][0]["feature"] in (
        "category=prepaid",
        "category=video",
        "total_spend",
    )
    streamer = model.predict({"categories": ["video"]}, TODAY)  # spend missing: the median
    assert top_interest(streamer, 0.5)[0] == "data"
    assert top_interest(streamer, 0.99) is None  # not sure enough


def test_noise_trains_no_model():
    rng = random.Random(3)
    noise = [
        ({"clicks": rng.randint(0, 40)}, {"price"} if rng.random() < 0.5 else set())
        for _ in range(200)
    ]
    model, figures = train(noise, ["price"], TODAY)
    assert model is None and figures["topics"]["price"]["skipped"] == "no better than the base rate"


def test_a_broken_model_file_is_reported(tmp_path):
    bad = tmp_path / MODEL_FILE
    bad.write_text('{"schema": "edgecall.interest-model/1", "cleaning": {"columns": []}}')
    with pytest.raises(InterestModelError, match="KeyError"):
        InterestModel.load(bad)
    model, _ = train(population(200), ["price"], TODAY)
    model.save(bad)
    data = json.loads(bad.read_text())
    data["topics"]["price"]["booster"] = "not a booster"
    bad.write_text(json.dumps(data))
    with pytest.raises(InterestModelError, match="booster unusable"):
        InterestModel.load(bad)


def calls_of(history: History, customers: list[tuple[dict, set[str]]]) -> None:
    """The customers as a list in the history, each called once and naming their topic."""
    rows = ["number,total_spend,purchase_count,categories,clicks"]
    for i, (raw, _) in enumerate(customers):
        rows.append(
            f"+8613800{i:06d},{raw.get('total_spend', '')},{raw['purchase_count']},"
            f"{';'.join(raw['categories'])},{raw['clicks']}"
        )
    read_list(lines("\n".join(rows) + "\n"), lambda b: history.store_customers(b, "retail-zh", "l"))
    for i, (_, named) in enumerate(customers):
        call_id, topic = f"k{i}", next(iter(named))
        base = {"schema": "edgecall.event/1", "call_id": call_id}
        history.record(
            {**base, "type": "call.started", "remote": f"+8613800{i:06d}", "campaign": "retail-zh"}
        )
        reply = {"topic": topic, "answer": "topic"}  # the caller asked about it
        history.record({**base, "type": "turn", "turn": 1, "utterance": "?", "reply": reply})
        history.record(
            {"schema": "edgecall.outcome/1", "call_id": call_id, "outcome": "failed", "turns": 1}
        )


async def test_the_daemon_trains_it_and_a_customer_is_called_in_their_interests_group(
    tmp_path, shipped_config
):
    history = History(tmp_path / "history.sqlite", keep_days=90)
    people = population(300)
    calls_of(history, people)
    samples = read_samples(history.path)
    assert len(samples) == 300 and samples[0][1] == people[0][1]
    box = learning_box(history, shipped_config, [0.0])
    box.learning.models_dir = tmp_path
    result = await box.learning.train_interests()  # the child process
    assert result["trained"] and box.learning.stats()["interests"]["topics"] == ["data", "price"]
    group, predicted = await box.learning.customer_group("retail-zh", "+8613800000000", None)
    expected = "likes-price" if "prepaid" in people[0][0]["categories"] else "likes-data"
    assert group == expected and set(predicted) == {"price", "data"}
    (script,) = [m for _, m in box.link.published if m["schema"] == GROUP_SCRIPT_SCHEMA]
    validator("group-script.json").validate(script)
    topic = expected.removeprefix("likes-")
    intro = shipped_config.campaigns["retail-zh"].prompts["product_intro"].text
    assert script["text"] == shipped_config.topics[topic].explanation["zh"] + intro
    assert box.renewed == 1
    # head office's own group stays; the prediction still goes with the call
    kept, predicted = await box.learning.customer_group("retail-zh", "+8613800000000", "vip")
    assert kept == "vip" and predicted
    assert await box.learning.customer_group("retail-zh", "+10000", None) == (None, None)


def test_interest_is_what_callers_ask_or_buy_after_hearing_not_the_factor(tmp_path):
    history = History(tmp_path / "history.sqlite", keep_days=90)
    calls_of(history, [({"purchase_count": 1, "categories": ["x"], "clicks": 1}, {"data"})])
    base = {"schema": "edgecall.event/1", "call_id": "k0"}
    history.record(
        {
            **base,
            "type": "turn",
            "turn": 2,
            "utterance": "no",
            "factor": {"topic": "price"},
            "reply": {"topic": "price", "answer": "factor"},
        }
    )
    ((_, named),) = read_samples(history.path)
    assert named == {"data"}  # the factor the robot's words gave is not an interest
    history.store_group_script(
        "retail-zh", "likes-contract", "product_intro@likes-contract", "t", ["contract"]
    )
    sold = {
        "schema": "edgecall.event/1",
        "call_id": "k0",
        "type": "flow",
        "node": "intro",
        "variant": "product_intro@likes-contract",
    }
    history.record(
        {
            "schema": "edgecall.event/1",
            "type": "call.started",
            "call_id": "s1",
            "remote": "+8613800000000",
            "campaign": "retail-zh",
        }
    )
    history.record({**sold, "call_id": "s1", "seq": 1})
    history.record(
        {
            "schema": "edgecall.outcome/1",
            "call_id": "s1",
            "outcome": "completed",
            "agreed": True,
            "turns": 0,
        }
    )
    ((_, named),) = read_samples(history.path)
    assert named == {"data", "contract"}  # bought after hearing contract explained first
