"""The simulated caller population of bench_learning talks to the real rule engine as
its assumptions say (tests/harness/population.py), and the learning loops run on it."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from tests.harness.population import ARMS, GROUPS, QUESTIONS, Caller, Simulation

BUDGET = GROUPS[0]


@pytest.fixture
def sim(tmp_path, shipped_config):
    s = Simulation(shipped_config, ARMS[0], tmp_path, seed=1)
    yield s
    s.history.close()


def turns(sim, call_id):
    rows = sim.history._db.execute(
        "SELECT utterance, reply FROM turns WHERE call_id = ? ORDER BY turn", (call_id,)
    )
    return [(u, json.loads(r)) for u, r in rows]


def person(sim, willing, *, annoyed=False, group=BUDGET):
    return Caller(group, willing, annoyed, sim.explanations)


def test_a_willing_caller_asks_is_answered_and_buys(sim):
    outcome = asyncio.run(sim.call(1, person(sim, 1.0)))
    assert (outcome["outcome"], outcome["agreed"], outcome["customer_group"]) == (
        "completed",
        True,
        "budget",
    )
    said = turns(sim, outcome["call_id"])
    assert said[1][0] == QUESTIONS["price"] and said[1][1]["topic"] == "price"  # answered
    assert said[-1][0] == "Yes, go ahead."


def test_an_unwilling_caller_declines_at_the_offer_and_the_objection(sim):
    outcome = asyncio.run(sim.call(1, person(sim, -1.0)))
    assert (outcome["outcome"], outcome["end_reason"]) == ("failed", "declined")
    assert [u for u, _ in turns(sim, outcome["call_id"])][-2:] == ["No thanks.", "No thanks."]


def test_an_annoyed_caller_says_so_and_the_rules_answer_before_soothing(sim):
    caller = person(sim, 0.5, annoyed=True)
    outcome = asyncio.run(sim.call(1, caller))
    (line, reply) = turns(sim, outcome["call_id"])[1]
    assert line == f"This is annoying. {QUESTIONS['price']}"
    assert reply["choice"]["options"] == ["followup.price", "soothing", "continue"]
    assert caller.annoyed  # an answer does not calm a budget caller: the offer finds them so


def test_the_concern_explained_in_the_intro_is_not_asked_about(sim):
    cfg = sim.cfg
    explained = (
        cfg.campaigns["retail-en"]
        .prompts["product_intro"]
        .model_copy(update={"text": cfg.topics["price"].explanation["en"]})
    )
    campaign = cfg.campaigns["retail-en"]
    sim.cfg = cfg.model_copy(
        update={
            "campaigns": {
                **cfg.campaigns,
                "retail-en": campaign.model_copy(
                    update={"prompts": {**campaign.prompts, "product_intro": explained}}
                ),
            }
        }
    )
    caller = person(sim, 0.0)
    outcome = asyncio.run(sim.call(1, caller))
    assert caller.addressed and caller.willing >= 0.2 - 0.05 - 1e-9
    assert QUESTIONS["price"] not in [u for u, _ in turns(sim, outcome["call_id"])]


def test_with_every_loop_on_the_box_learns_group_scripts_and_variant_figures(
    tmp_path, shipped_config
):
    sim = Simulation(shipped_config, dataclasses.replace(ARMS[-1]), tmp_path, seed=2)
    asyncio.run(sim.run(300))
    scripts = sim.history.group_scripts("retail-en")
    assert set(scripts) == {"budget", "streamers", "cautious"}
    assert scripts["budget"]["topics"][0] == "price" and scripts["streamers"]["topics"][0] == "data"
    groups = {v["group"] for v in sim.history.summary()["campaigns"]["retail-en"]["variants"]}
    assert groups == {"budget", "streamers", "cautious"}
    sim.history.close()
