"""The flow engine on plain data: which node, which prompts, which ending, and why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edgecall.config.flows import Flow
from edgecall.config.rules import ConversationRuleConfig
from edgecall.rules.answers import Understood
from edgecall.rules.factor import Factor
from edgecall.rules.flow import FlowEngine, TurnFacts
from edgecall.rules.understanding import Understanding

FLOW = Flow.model_validate(
    {
        "start": "hello",
        "declined": "bye",
        "nodes": {
            "hello": {"say": ["hello_a", "hello_b"], "on": {"yes": "offer", "no": "bye"}},
            "offer": {
                "say": "offer",
                "reask": "offer_q",
                "on": {"yes": "sold", "no": "bye", "interested": "sold"},
            },
            "sold": {"say": "thanks", "end": "sale"},
            "bye": {"say": "closing", "end": "declined"},
        },
    }
)
RULES = ConversationRuleConfig()
NOTHING = Understood(None, None, None, None, None)


def engine(flow: Flow = FLOW, rules: ConversationRuleConfig = RULES) -> FlowEngine:
    return FlowEngine(flow, {"price", "data"}, rules)


def facts(
    *,
    yes_no=None,
    request=None,
    callback_at=None,
    heard=True,
    emotion=0,
    intents=(0,),
    changed=False,
    factor=None,
    topics=(),
    reason=None,
    positive=0,
    negative=0,
) -> TurnFacts:
    understood = Understood(
        yes_no,
        request,
        "words" if yes_no or request else None,
        callback_at,
        "after 3" if callback_at else None,
    )
    return TurnFacts(
        understood=understood,
        heard=heard,
        emotion=emotion,
        intents=list(intents),
        changed=changed,
        factor=factor,
        asked_topics=list(topics),
        stated_reason=reason,
        positive_words=positive,
        negative_words=negative,
    )


def at(node: str, call_id: str = "c1"):
    e = engine()
    state, _ = e.begin(call_id)
    state.node = node
    return e, state


def test_the_call_begins_at_the_start_node_with_one_variant_fixed_per_call():
    e = engine()
    said = {e.begin(f"call-{i}")[1].say for i in range(40)}
    assert said == {("hello_a",), ("hello_b",)}  # both variants are heard across calls
    assert e.begin("call-7")[1].say == e.begin("call-7")[1].say  # a replay hears the same


def test_yes_and_no_follow_the_node_and_only_a_confirmed_yes_is_a_sale():
    e, state = at("hello")
    step = e.turn(state, facts(yes_no="yes"), "c1")
    assert (step.node, step.say, step.answer, step.ending) == ("offer", ("offer",), "yes", None)
    step = e.turn(state, facts(yes_no="yes"), "c1")
    assert (step.node, step.say, step.ending) == ("sold", ("thanks",), "sale")
    e, state = at("offer")
    step = e.turn(state, facts(yes_no="no"), "c1")
    assert (step.node, step.ending) == ("bye", "declined")


def test_interest_in_the_callers_words_moves_on_the_parametric_value_alone_does_not():
    e, state = at("offer")
    step = e.turn(state, facts(intents=(0, 1), positive=1), "c1")
    assert (step.node, step.answer) == ("sold", "interested")
    e, state = at("offer")
    step = e.turn(state, facts(intents=(1,), positive=0), "c1")
    assert step.node == "offer" and step.answer == "unclear"


def test_a_question_about_a_topic_is_answered_then_the_node_asks_again():
    e, state = at("offer")
    step = e.turn(state, facts(topics=["coverage", "price"]), "c1")
    assert step.say == ("followup.price", "offer_q")  # coverage has no follow-up here
    assert (step.node, step.answer, step.topic) == ("offer", "topic", "price")


def test_an_explicit_answer_outranks_the_topic_and_the_factor():
    e, state = at("offer")
    factor = Factor("price", True, "negative", "shared", Understanding("negative", (), ()))
    step = e.turn(state, facts(yes_no="yes", topics=["price"], changed=True, factor=factor), "c1")
    assert step.node == "sold"


def test_the_influencing_factor_is_addressed_when_emotion_or_intent_changed():
    factor = Factor("data", True, "negative", "shared", Understanding("negative", (), ()))
    e, state = at("offer")
    step = e.turn(state, facts(changed=True, factor=factor), "c1")
    assert (step.say, step.answer) == (("followup.data", "offer_q"), "factor")
    e, state = at("offer")
    assert e.turn(state, facts(changed=False, factor=factor), "c1").answer != "factor"


def test_negative_emotion_is_soothed_unless_the_node_keeps_the_rule_off():
    e, state = at("offer")
    step = e.turn(state, facts(emotion=-1), "c1")
    assert step.say == ("soothing", "offer_q")
    flow = FLOW.model_copy(deep=True)
    data = flow.model_dump()
    data["nodes"]["offer"]["rules"] = ["transfer"]
    e = engine(Flow.model_validate(data))
    state, _ = e.begin("c1")
    state.node = "offer"
    assert e.turn(state, facts(emotion=-1), "c1").answer == "unclear"


def test_a_refusal_that_persists_goes_to_the_declined_node():
    e, state = at("offer")
    step = e.turn(state, facts(intents=(-1, -1, -1)), "c1")
    assert (step.node, step.answer, step.ending) == ("bye", "refusal", "declined")
    e, state = at("offer")
    assert e.turn(state, facts(intents=(0, -1, -1)), "c1").ending is None


@pytest.mark.parametrize(
    ("request_", "ending", "say"),
    [
        ("do_not_call", "do_not_call", ("do_not_call",)),
        ("goodbye", "goodbye", ("goodbye",)),
    ],
)
def test_requests_at_any_node_end_the_call(request_, ending, say):
    for node in ("hello", "offer"):
        e, state = at(node)
        step = e.turn(state, facts(request=request_, yes_no="yes"), "c1")
        assert (step.ending, step.say) == (ending, say)


def test_do_not_call_outranks_every_other_request_and_answer():
    e, state = at("offer")
    step = e.turn(state, facts(request="do_not_call", yes_no="yes", topics=["price"]), "c1")
    assert step.ending == "do_not_call"


def test_a_person_asked_for_is_a_transfer_and_so_is_the_key():
    e, state = at("offer")
    step = e.turn(state, facts(request="human"), "c1")
    assert (step.transfer, step.say) == (True, ("transfer_notice",))
    assert e.key(state, "0").transfer
    assert e.key(state, "5") is None
    assert engine(rules=ConversationRuleConfig(dtmf_human=None)).key(state, "0") is None


def test_a_time_or_a_stated_reason_books_a_callback():
    e, state = at("offer")
    when = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    step = e.turn(state, facts(callback_at=when), "c1")
    assert (step.ending, step.answer, step.say) == ("callback", "callback", ("callback",))
    e, state = at("offer")
    step = e.turn(state, facts(reason="in a meeting"), "c1")
    assert (step.ending, step.answer) == ("callback", "stated_reason")


def test_repeat_says_the_node_again_and_who_is_this_identifies_then_asks_again():
    e, state = at("offer")
    assert e.turn(state, facts(request="repeat"), "c1").say == ("offer",)
    step = e.turn(state, facts(request="who"), "c1")
    assert (step.node, step.say) == ("offer", ("identify", "offer_q"))


def test_not_understood_asks_again_at_most_max_repeats_times_then_closes():
    e, state = at("hello")
    first = e.turn(state, facts(heard=False), "c1")
    second = e.turn(state, facts(heard=False), "c1")
    third = e.turn(state, facts(heard=False), "c1")
    assert first.say == second.say == ("repeat",)
    assert (first.ending, second.ending) == (None, None)
    assert (third.ending, third.say) == ("not_understood", ("goodbye",))


def test_an_understood_answer_resets_the_repeat_count():
    e, state = at("hello")
    e.turn(state, facts(heard=False), "c1")
    e.turn(state, facts(heard=False), "c1")
    e.turn(state, facts(topics=["price"]), "c1")  # answered a question: understood
    assert e.turn(state, facts(heard=False), "c1").ending is None


def test_words_the_node_does_not_name_reask_its_question_or_go_to_other():
    e, state = at("offer")
    assert e.turn(state, facts(), "c1").say == ("offer_q",)
    data = FLOW.model_dump()
    data["nodes"]["hello"]["on"]["other"] = "offer"
    e = engine(Flow.model_validate(data))
    state, _ = e.begin("c1")
    step = e.turn(state, facts(), "c1")
    assert (step.node, step.answer) == ("offer", "other")
    state.node = "hello"
    assert e.turn(state, facts(heard=False), "c1").answer == "unclear"  # silence is not other


def test_silence_reprompts_once_then_closes():
    e, state = at("offer")
    first = e.silence(state)
    assert (first.say, first.ending) == (("still_there", "offer_q"), None)
    second = e.silence(state)
    assert (second.ending, second.say) == ("silence", ("goodbye",))


def test_speaking_resets_the_silence_count():
    e, state = at("offer")
    e.silence(state)
    e.turn(state, facts(topics=["price"]), "c1")
    assert e.silence(state).ending is None


def test_visited_nodes_are_kept_in_order():
    e = engine()
    state, _ = e.begin("c1")
    e.turn(state, facts(yes_no="yes"), "c1")
    e.turn(state, facts(yes_no="yes"), "c1")
    assert state.visited == ["hello", "offer", "sold"]
