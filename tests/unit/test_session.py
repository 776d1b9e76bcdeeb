"""The call session: exactly one outcome, strictly sequenced and schema-valid messages."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecall.messages import Identity
from edgecall.rules.session import CallSession, HangUp, Lexicons, Say, SendSms, Transfer
from edgecall.validation import schema_errors

T0 = 1_800_000_000.0
ID = Identity("site", "edge")

UTTERANCES = [
    "",
    "好的，我挺感兴趣的",
    "多少钱？",
    "太贵了，不需要",
    "骗子，烦死了",
    "我在电梯里",
    "Sounds good, I'm interested",
    "How much is it?",
    "This is a scam, stop calling",
]

inputs = st.lists(
    st.one_of(
        st.tuples(st.just("turn"), st.sampled_from(UTTERANCES), st.none() | st.floats(-1, 1)),
        st.tuples(st.just("quality"), st.none() | st.floats(-140, -50), st.none()),
        st.tuples(st.just("sms"), st.booleans(), st.none()),
        st.tuples(st.just("transfer"), st.booleans(), st.none()),
        st.tuples(
            st.just("hangup"), st.sampled_from(["caller", "appliance", "network"]), st.none()
        ),
        st.tuples(st.just("fail"), st.none(), st.none()),
        st.tuples(st.just("not_connected"), st.sampled_from(["busy", "no_answer"]), st.none()),
        st.tuples(st.just("note"), st.sampled_from(["modem", "rtp", None]), st.none()),
    ),
    max_size=30,
)


def new_session(cfg, lexicons, language=None):
    return CallSession(
        cfg, lexicons, ID, call_id="c", direction="outbound", remote="+1", t=T0, language=language
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=inputs, language=st.sampled_from(["zh", "en", "fr", None]))
def test_exactly_one_outcome_strictly_sequenced(shipped_config, events, language):
    session = new_session(shipped_config, Lexicons(shipped_config), language)
    t = T0
    for kind, a, b in events:
        t += 1
        if kind == "turn":
            session.caller_turn(a, t, acoustic=b)
        elif kind == "quality":
            session.quality(a, t, "test")
        elif kind == "sms":
            session.sms_result(a, "test", t)
        elif kind == "transfer":
            session.transfer_result(a, "test", t)
        elif kind == "hangup":
            session.hangup(a, t)
        elif kind == "not_connected":
            session.not_connected(a, t)
        elif kind == "note":
            session.quality_note({"from": "sip_header", "to": a, "reason": "test"}, t)
        else:
            session.fail("injected", t)
    session.finish(t + 1)
    session.finish(t + 2)  # idempotent
    messages = session.take_messages()
    outcomes = [m for m in messages if m.kind == "outcome"]
    assert len(outcomes) == 1
    assert messages[-1].kind == "outcome"
    assert [m.body["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert len({m.body["message_id"] for m in messages}) == len(messages)
    for m in messages:
        assert schema_errors(m.body) == [], (m.body, schema_errors(m.body))
    if language == "fr":
        assert "language 'fr' unknown, used 'zh'" in outcomes[0].body["missing"]


def test_poor_signal_actions_and_outcome_wait_for_sms(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    actions = []
    for i, dbm in enumerate([-100, -121, -125, -90, -130]):
        actions += s.quality(dbm, T0 + i + 1, "modem")
    assert [type(a) for a in actions] == [Say, HangUp, SendSms]
    assert actions[0].situation == "network_problem"
    assert actions[2].number == "+1"
    s.hangup("appliance", T0 + 6, "poor_signal")
    assert s.outcome is None  # waits for the SMS result
    s.sms_result(True, "queued", T0 + 7)
    assert s.outcome["outcome"] == "poor_signal_hangup"
    assert s.outcome["window"] == [-100, -121, -125, -90, -130]
    assert s.outcome["sms"]["sent"] is True


def test_sms_result_never_arriving_still_closes(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    for i in range(3):
        s.quality(-130, T0 + i + 1, "modem")
    s.hangup("appliance", T0 + 4)
    outcome = s.finish(T0 + 40)
    assert outcome["outcome"] == "poor_signal_hangup"
    assert outcome["sms"]["sent"] is False
    assert "no SMS result" in outcome["sms"]["detail"]


def test_transfer_hands_over_a_labelled_transcript(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    turns = [
        ("你好，这是什么套餐？", 0.6),
        ("听起来不错，我挺感兴趣的，多少钱？", 0.5),
        ("什么？怎么这么贵，你们就是骗子", -0.7),
        ("烦死了，别浪费我的时间", -0.8),
    ]
    actions = []
    for i, (text, acoustic) in enumerate(turns):
        actions = s.caller_turn(text, T0 + i, acoustic=acoustic)
    assert isinstance(actions[-1], Transfer) and actions[-1].target == "8000"
    prompt = next(m for m in s.take_messages() if m.kind == "agent_prompt")
    assert prompt.agent == "8000"
    caller_lines = [x for x in prompt.body["transcript"] if x["speaker"] == "caller"]
    assert [x["text"] for x in caller_lines] == [t for t, _ in turns]
    assert [(x["emotion"], x["intent"]) for x in caller_lines] == [
        (1, -1),
        (1, 1),
        (-1, 1),
        (-1, 1),
    ]
    s.transfer_result(True, "202 Accepted", T0 + 10)
    assert s.outcome["outcome"] == "transferred"


def test_failed_transfer_keeps_the_call_and_says_so(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    for i, (text, a) in enumerate(
        [("好的", 0.6), ("不错，感兴趣", 0.6), ("骗子", -0.9), ("烦", -0.9)]
    ):
        s.caller_turn(text, T0 + i, acoustic=a)
    assert s.state.transfer is not None
    s.transfer_result(False, "486 Busy Here", T0 + 5)
    assert s.outcome is None
    s.hangup("caller", T0 + 6)
    assert "transfer to 8000 failed: 486 Busy Here" in s.outcome["missing"]


def test_empty_transcript_and_missing_acoustic_are_reported(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    s.caller_turn("", T0 + 1)
    turn = next(m.body for m in s.take_messages() if m.body.get("type") == "turn")
    assert turn["missing"] == ["transcript", "acoustic"]
    assert turn["emotion"]["sources"] == []
    s.hangup("caller", T0 + 2)
    assert "transcript of turn 1" in s.outcome["missing"]
    assert "quality samples" in s.outcome["missing"]


def test_not_connected_and_quality_notes(shipped_config):
    s = new_session(shipped_config, Lexicons(shipped_config))
    s.quality_note({"from": "modem", "to": "rtp", "reason": "modem: no value for 3.0 s"}, T0 + 1)
    s.not_connected("busy", T0 + 2, "486 Busy Here")
    s.not_connected("no_answer", T0 + 3)  # a second ending is ignored
    messages = s.take_messages()
    note = next(m.body for m in messages if m.body.get("type") == "quality.source")
    assert (note["source_from"], note["source_to"]) == ("modem", "rtp")
    assert (s.outcome["outcome"], s.outcome["reason"]) == ("not_connected", "busy")
    assert sum(m.kind == "outcome" for m in messages) == 1
    for m in messages:
        assert schema_errors(m.body) == []
