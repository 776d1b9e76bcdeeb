"""Prompt variants per customer group (seed 003 S5): Thompson sampling, retirement,
scripts composed for groups; plain-data histories whose right answer is known, the
pure rules, and the daemon's own glue (history, learning loops, a call session)."""

from __future__ import annotations

import random
import sqlite3

import pytest

from edgecall.config.scripts import RetireFloors
from edgecall.dialer import DialQueue
from edgecall.history import History
from edgecall.learning import GROUP_SCRIPT_SCHEMA, VARIANT_RETIRED_SCHEMA, group_prompt
from edgecall.messages import Identity
from edgecall.mqtt.commands import CommandRequest
from edgecall.mqtt.site_work import WorkItem, parse_item
from edgecall.rules.session import CallSession, Customer, Lexicons
from edgecall.rules.variants import (
    VariantPicker,
    VariantStats,
    choose,
    prob_beats,
    retirements,
    rng_for,
)
from edgecall.validation import validator
from tests.unit.test_intro_learning import learning_box

T0 = 1_800_000_000.0
FLOORS = RetireFloors(min_uses=50, min_answer_rate=0.2, min_mean_talk_s=10.0, confidence=0.95)


def s(uses: int, sales: int, *, answered: int | None = None, talk: float = 30.0, retired=None):
    answered = uses if answered is None else answered
    return VariantStats(uses, sales, answered, talk * uses, uses, retired)


# --- the pure rules ---------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [((10, 3), (10, 5)), ((100, 30), (80, 20)), ((5, 0), (5, 5))])
def test_prob_beats_is_the_posterior_probability(a, b):
    win, lose = s(*a), s(*b)
    rng = random.Random(7)
    draws = 40_000
    hits = sum(
        rng.betavariate(1 + win.sales, 1 + win.uses - win.sales)
        > rng.betavariate(1 + lose.sales, 1 + lose.uses - lose.sales)
        for _ in range(draws)
    )
    assert prob_beats(win, lose) == pytest.approx(hits / draws, abs=0.01)
    assert prob_beats(win, lose) + prob_beats(lose, win) == pytest.approx(1.0, abs=1e-9)


def test_thompson_sampling_favours_the_better_variant_and_still_tries_the_other():
    stats = {"a": s(200, 20), "b": s(200, 60)}
    picks = [choose(["a", "b"], stats, random.Random(i)) for i in range(500)]
    assert picks.count("b") > 490  # 30 % against 10 % over 200 calls each: b nearly always
    flat = [choose(["a", "b", "new"], {}, random.Random(i)) for i in range(300)]
    assert all(flat.count(k) > 60 for k in ("a", "b", "new"))  # no figures: all tried
    fresh = [choose(["a", "b", "new"], stats, random.Random(i)) for i in range(500)]
    assert 50 < fresh.count("new") < 450  # a new variant's flat posterior gets it tried


def test_a_retired_variant_is_never_chosen_and_the_choice_is_fixed_per_call():
    stats = {"a": s(60, 30, retired="worse"), "b": s(60, 1)}
    assert {choose(["a", "b"], stats, random.Random(i)) for i in range(50)} == {"b"}
    picker = VariantPicker({"n": stats})
    assert picker("n", ["a", "b"], "call-1") == "b"
    fair = VariantPicker(bandit=False)
    assert {fair("n", ["a", "b"], f"c{i}") for i in range(40)} == {"a", "b"}
    assert rng_for("c1", "n").random() == rng_for("c1", "n").random()


def test_retirement_needs_min_uses_and_confidence_and_never_empties_a_node():
    assert retirements({"a": s(49, 0), "b": s(49, 20)}, FLOORS) == []  # too few uses
    (out,) = retirements({"a": s(60, 3), "b": s(60, 20)}, FLOORS)
    assert (out.variant, out.evidence["best"]) == ("a", "b")
    assert out.evidence["p_best_better"] >= 0.95 and "sells better" in out.why
    assert retirements({"a": s(60, 15), "b": s(60, 20)}, FLOORS) == []  # not sure enough
    # below the seed's floors, whatever it sells: few answered, or short calls after it
    (quiet,) = retirements({"a": s(60, 20, answered=6), "b": s(60, 18)}, FLOORS)
    assert quiet.variant == "a" and "answer rate 10%" in quiet.why
    (short,) = retirements({"a": s(60, 20, talk=4.0), "b": s(60, 18)}, FLOORS)
    assert short.variant == "a" and "talk time" in short.why
    # every variant condemned: the best of them stays
    assert [
        r.variant
        for r in retirements({"a": s(60, 0, answered=1), "b": s(60, 1, answered=1)}, FLOORS)
    ] == ["a"]
    three = {"a": s(100, 2), "b": s(100, 5), "c": s(100, 40)}
    assert [r.variant for r in retirements(three, FLOORS)] == ["a", "b"]  # worst first
    assert retirements({"a": s(100, 2, retired="x"), "b": s(100, 40)}, FLOORS) == []


# --- the history ----------------------------------------------------------------


class Calls:
    """Finished calls written into a history as a call publishes them."""

    def __init__(self, history: History, clock: list[float]) -> None:
        self.h, self.clock, self.n = history, clock, 0

    def call(
        self,
        heard: dict[str, str],
        *,
        sale: bool,
        group: str | None = None,
        campaign: str = "retail-en",
        turns: int = 2,
        topics: tuple[str, ...] = (),
        number: str = "+15550100001",
    ) -> str:
        self.n += 1
        self.clock[0] += 60
        call_id, seq = f"c{self.n}", 0

        def msg(kind: str, **body) -> dict:
            nonlocal seq
            seq += 1
            return {
                "schema": "edgecall.event/1",
                "type": kind,
                "call_id": call_id,
                "seq": seq,
                **body,
            }

        ts = "2027-01-15T08:00:00.000Z"
        self.h.record(
            msg("call.started", campaign=campaign, remote=number, customer_group=group, ts=ts)
        )
        for node, variant in heard.items():
            self.h.record(msg("flow", node=node, variant=variant, ts=ts))
        for i in range(turns):
            factor = {"topic": topics[i]} if i < len(topics) else None
            self.h.record(msg("turn", turn=i + 1, utterance="words", factor=factor, ts=ts))
        self.h.record(
            {
                "schema": "edgecall.outcome/1",
                "call_id": call_id,
                "outcome": "completed" if sale else "failed",
                "agreed": sale,
                "turns": turns,
                "ts": "2027-01-15T08:00:40.000Z",
            }
        )
        return call_id


@pytest.fixture
def box(tmp_path, shipped_config):
    clock = [T0]
    history = History(tmp_path / "history.sqlite", keep_days=30, clock=lambda: clock[0])
    b = learning_box(history, shipped_config, clock)
    b.calls = Calls(history, clock)
    return b


def learned(box, schema: str) -> list[dict]:
    return [m for topic, m in box.link.published if topic == "learning" and m["schema"] == schema]


def test_each_group_counts_its_own_uses_and_the_counts_outlive_the_calls(box):
    for sale in (True, False, False):
        box.calls.call({"intro": "product_intro"}, sale=sale, group="vip")
    box.calls.call({"intro": "product_intro"}, sale=True, turns=0)  # no group: general
    vip = box.history.variant_book("retail-en", "vip")["intro"]["product_intro"]
    assert (vip.uses, vip.sales, vip.answered, vip.interactions) == (3, 1, 3, 6)
    assert vip.talk_s == pytest.approx(3 * 40.0)
    general = box.history.variant_book("retail-en", "general")["intro"]["product_intro"]
    assert (general.uses, general.sales, general.answered) == (1, 1, 0)
    # an outcome recorded twice counts once
    box.history.record(
        {"schema": "edgecall.outcome/1", "call_id": "c1", "outcome": "completed", "agreed": True}
    )
    assert box.history.variant_book("retail-en", "vip")["intro"]["product_intro"].uses == 3
    box.history.forget("+15550100001")
    box.clock[0] += 40 * 86400
    box.history.prune()
    assert box.history._db.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    assert box.history.variant_book("retail-en", "vip")["intro"]["product_intro"].uses == 3


async def test_a_clearly_worse_variant_is_retired_reported_and_can_be_restored(box):
    rng = random.Random(3)
    for _ in range(60):
        box.calls.call({"offer": "offer"}, sale=rng.random() < 0.45, group="vip")
        box.calls.call({"offer": "offer_short"}, sale=rng.random() < 0.05, group="vip")
        box.calls.call({"offer": "offer_short"}, sale=rng.random() < 0.45)  # general: fine
    await box.learning.review_variants("retail-en", "vip")
    await box.learning.review_variants("retail-en", "general")
    (retired,) = learned(box, VARIANT_RETIRED_SCHEMA)
    validator("variant-retired.json").validate(retired)
    assert (retired["group"], retired["node"], retired["variant"], retired["restored"]) == (
        "vip",
        "offer",
        "offer_short",
        False,
    )
    assert retired["evidence"]["best"] == "offer" and retired["evidence"]["uses"] == 60
    picker = box.learning.variant_source(box.cfg)("retail-en", "vip")
    assert {picker("offer", ["offer", "offer_short"], f"x{i}") for i in range(30)} == {"offer"}
    other = box.learning.variant_source(box.cfg)("retail-en", "general")
    assert other.book["offer"]["offer_short"].retired is None  # groups are judged apart
    await box.learning.review_variants("retail-en", "vip")
    assert len(learned(box, VARIANT_RETIRED_SCHEMA)) == 1  # retired once
    stats = box.history.summary("retail-en")["campaigns"]["retail-en"]["variants"]
    (row,) = [v for v in stats if v["variant"] == "offer_short" and v["group"] == "vip"]
    assert row["retired"] == retired["why"]

    args = {"campaign": "retail-en", "node": "offer", "variant": "offer_short", "group": "vip"}
    reply = await box.learning.variant_restore(CommandRequest("variant-restore", "r-1", args))
    assert reply == {"restored": True}
    back = learned(box, VARIANT_RETIRED_SCHEMA)[-1]
    validator("variant-retired.json").validate(back)
    assert back["restored"] and back["evidence"]["request_id"] == "r-1"
    assert box.history.variant_book("retail-en", "vip")["offer"]["offer_short"].uses == 60
    again = await box.learning.variant_restore(CommandRequest("variant-restore", "r-2", args))
    assert again == {"restored": False}


async def test_an_end_node_is_judged_on_sales_alone(box):
    for _ in range(60):  # nobody speaks after a goodbye: answer rate 0, short talk
        box.calls.call({"sale": "sale_confirmed"}, sale=True, turns=0)
        box.calls.call({"sale": "sale_confirmed_b"}, sale=True, turns=0)
    await box.learning.review_variants("retail-en", "general")
    assert learned(box, VARIANT_RETIRED_SCHEMA) == []


async def test_a_group_without_a_script_gets_one_from_its_interests(box, shipped_config):
    rules = shipped_config.rules.variants
    for i in range(rules.group_script_min_calls - 1):
        topics = ("contract", "price") if i % 3 else ("price",)
        box.calls.call({"intro": "product_intro"}, sale=False, group="movers", topics=topics)
    await box.learning.review_group_script("retail-en", "movers")
    assert learned(box, GROUP_SCRIPT_SCHEMA) == []  # one call short of the minimum
    box.calls.call({"intro": "product_intro"}, sale=False, group="movers", topics=("coverage",))
    await box.learning.review_group_script("retail-en", "movers")
    (script,) = learned(box, GROUP_SCRIPT_SCHEMA)
    validator("group-script.json").validate(script)
    explain = {t: shipped_config.topics[t].explanation["en"] for t in ("price", "contract")}
    configured = shipped_config.campaigns["retail-en"].prompts["product_intro"].text
    assert script["topics"] == ["price", "contract"]  # 20 calls named price, 12 contract
    assert script["text"] == f"{explain['price']} {explain['contract']} {configured}"
    assert (script["node"], script["prompt"]) == ("intro", group_prompt("movers"))
    assert script["evidence"] == {"calls": 20, "topics": ["price", "contract", "coverage"]}
    assert box.renewed == 1
    # new calls of the group may hear it (the bandit judges it); other groups never do
    cfg = box.learning.prompts(shipped_config)
    assert cfg.campaigns["retail-en"].prompts["product_intro@movers"].text == script["text"]
    source = box.learning.variant_source(shipped_config)
    movers = source("retail-en", "movers")
    heard = {movers("intro", ["product_intro"], f"m{i}") for i in range(40)}
    assert heard == {"product_intro", "product_intro@movers"}
    assert {
        source("retail-en", "general")("intro", ["product_intro"], f"g{i}") for i in range(40)
    } == {"product_intro"}
    await box.learning.review_group_script("retail-en", "movers")  # stored once, kept
    assert len(learned(box, GROUP_SCRIPT_SCHEMA)) == 1


def test_a_session_says_the_chosen_variant_and_reports_the_customer(shipped_config):
    cfg = shipped_config
    calls = []

    def source(campaign: str, group: str) -> VariantPicker:
        calls.append((campaign, group))
        return VariantPicker(extra={"opening": ["identify"]})  # any prompt key will do

    said = set()
    for i in range(30):
        session = CallSession(
            cfg,
            Lexicons(cfg),
            Identity("site-1", "box-1"),
            call_id=f"call-{i}",
            direction="outbound",
            remote="+15550100001",
            t=T0,
            campaign="retail-en",
            customer=Customer("cust-9", "vip"),
            variants=source,
        )
        session.opening(T0 + 1)
        messages = [m.body for m in session.take_messages()]
        started = messages[0]
        assert (started["customer_id"], started["customer_group"]) == ("cust-9", "vip")
        flow = next(m for m in messages if m.get("type") == "flow")
        said.add(flow["variant"])
        validator("event.json").validate(flow)
        outcome = session.finish(T0 + 2)
        assert (outcome["customer_id"], outcome["customer_group"]) == ("cust-9", "vip")
    assert said == {"opening", "identify"} and set(calls) == {("retail-en", "vip")}


def test_the_customer_travels_from_dial_list_to_redial_and_site_queue(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    q.add_many([{"number": "+15550100001", "customer_id": "cust-9", "group": "vip"}], T0)
    (item,) = q.due(T0, 5)
    assert (item.customer_id, item.group) == ("cust-9", "vip")
    outcome = {
        "outcome": "redial_scheduled",
        "number": "+15550100001",
        "due": "2027-01-15T08:10:00.000Z",
        "call_id": "c1",
        "customer_id": "cust-9",
        "customer_group": "vip",
    }
    q.schedule_redial(outcome, attempt=1, max_attempts=3)
    redial = next(i for i in q.due(T0 + 3600, 5) if i.kind == "redial")
    assert (redial.customer_id, redial.group) == ("cust-9", "vip")
    shared = WorkItem.redial(redial)
    validator("work-item.json").validate(shared.body())
    back = parse_item(__import__("json").dumps(shared.body()).encode())
    assert (back.customer_id, back.group) == ("cust-9", "vip")
    assert back.dial_item(T0).group == "vip"


def test_a_dial_queue_written_before_customer_columns_is_upgraded(tmp_path):
    path = tmp_path / "dials.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE dials(id INTEGER PRIMARY KEY, number TEXT NOT NULL, due REAL NOT NULL, "
        "kind TEXT NOT NULL, ref TEXT, campaign TEXT, language TEXT, origin_call_id TEXT, "
        "attempt INTEGER NOT NULL)"
    )
    db.execute(
        "INSERT INTO dials(number, due, kind, attempt) VALUES ('+15550100001', 1.0, 'dial', 1)"
    )
    db.commit()
    db.close()
    (item,) = DialQueue(path).due(2.0, 5)
    assert (item.number, item.customer_id, item.group) == ("+15550100001", None, None)


def test_the_bandit_learns_the_better_variant_through_the_history(box):
    """400 calls of one group, the real picker on the real history: 'offer' sells 30 %,
    'offer_short' 10 %. Most calls end up hearing the better one."""
    rng = random.Random(11)
    truth = {"offer": 0.30, "offer_short": 0.10}
    heard = []
    for i in range(400):
        picker = box.learning.variant_source(box.cfg)("retail-en", "vip")
        variant = picker("offer", ["offer", "offer_short"], f"sim-{i}")
        heard.append(variant)
        box.calls.call({"offer": variant}, sale=rng.random() < truth[variant], group="vip")
    late = heard[200:]
    assert late.count("offer") / len(late) > 0.8
    assert heard[:40].count("offer_short") >= 5  # it was tried early on


async def test_a_broken_history_costs_the_learning_not_the_call(box, caplog):
    box.calls.call({"intro": "product_intro"}, sale=True, group="vip")
    for table in ("variant_stats", "group_scripts"):
        box.history._db.execute(f"DROP TABLE {table}")
    call_id = box.calls.call({"intro": "product_intro"}, sale=True, group="vip")
    (kept,) = box.history._db.execute("SELECT outcome FROM calls WHERE call_id = ?", (call_id,))
    assert kept == ("completed",) and box.history.stats()["failed_writes"] == 1
    picker = box.learning.variant_source(box.cfg)("retail-en", "vip")
    assert picker("offer", ["offer", "offer_b"], "c1") in ("offer", "offer_b")
    await box.learning.after_call("retail-en", "vip", {"outcome": "failed"})
    assert box.learning.prompts(box.cfg).campaigns == box.cfg.campaigns  # configured prompts
    assert box.link.published == []
    assert "unreadable" in caplog.text
