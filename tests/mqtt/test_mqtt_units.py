"""Pure pieces of the link: backoff, error naming, topic tree."""

from __future__ import annotations

import random

import pytest

from edgecall.mqtt.link import LinkState, backoff_delay, classify_error
from edgecall.mqtt.topics import TopicError, Topics, default_prefix


def test_backoff_doubles_is_capped_and_jittered():
    rng = random.Random(7)
    for attempt in range(12):
        base = min(60.0, 1.0 * 2**attempt)
        delays = [backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1  # jitter: appliances do not reconnect in lockstep
    assert backoff_delay(10_000, 1.0, 60.0, rng) <= 60.0


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Connection refused: Not authorised", LinkState.AUTH_FAILED),
        ("[code:134] Bad user name or password", LinkState.AUTH_FAILED),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
            "issuer certificate (_ssl.c:1006)",
            LinkState.TLS_FAILED,
        ),
        ("[Errno 111] Connection refused", LinkState.UNREACHABLE),
        ("timed out", LinkState.UNREACHABLE),
        ("Disconnected during message iteration", LinkState.DISCONNECTED),
    ],
)
def test_classify_error(text: str, state: LinkState):
    assert classify_error(text) is state


def test_topic_tree():
    t = Topics(default_prefix("sh-01", "box-1"))
    assert t.status == "edgecall/sh-01/box-1/status"
    assert t.events("c-1") == "edgecall/sh-01/box-1/calls/c-1/events"
    assert t.prompts("8001") == "edgecall/sh-01/box-1/agents/8001/prompts"
    assert t.reply("dial") == "edgecall/sh-01/box-1/cmd/dial/reply"
    assert t.classify(t.events("c-1")) == ("events", "c-1")
    assert t.classify(t.command("ping")) == ("command", "ping")
    assert t.classify(t.reply("ping")) == ("reply", "ping")
    assert t.classify("elsewhere/status") == ("other", None)
    assert t.classify(t.prefix + "/cmd/a/b/c") == ("other", None)


@pytest.mark.parametrize("bad", ["a/+", "#", "c/1", "", "x y", "-1001"])
def test_extension_levels_refuse_wildcards_and_separators(bad: str):
    with pytest.raises(TopicError):
        Topics("p").prompts(bad)


@pytest.mark.parametrize(
    ("call_id", "level"),
    [
        ("-YcbuKeT7abc", "-YcbuKeT7abc"),  # PJSIP Call-IDs may start with '-'
        ("a1b2@pbx.branch", "a1b2@pbx.branch"),
        ("abc/def+g#h i", "abc%2Fdef%2Bg%23h%20i"),
        ("通话1", "%E9%80%9A%E8%AF%9D1"),
    ],
)
def test_any_sip_call_id_becomes_one_safe_topic_level(call_id: str, level: str):
    t = Topics("p")
    assert t.events(call_id) == f"p/calls/{level}/events"
    assert t.classify(t.events(call_id)) == ("events", level)


def test_long_call_ids_are_shortened_but_stay_distinct():
    t = Topics("p")
    a, b = t.events("x" * 300 + "a"), t.events("x" * 300 + "b")
    assert a != b
    assert all(len(topic.split("/")[2]) <= 128 for topic in (a, b))
    with pytest.raises(TopicError):
        t.events("")


@pytest.mark.parametrize("bad", ["", "/a", "a/", "a//b", "a/+/b", "a/#"])
def test_bad_prefix(bad: str):
    with pytest.raises(TopicError):
        Topics(bad)


@pytest.mark.parametrize(
    "name", ["status.json", "stats.json", "command.json", "command-reply.json"]
)
def test_schemas_are_valid_draft_2020_12(name: str):
    from jsonschema import Draft202012Validator

    from edgecall.mqtt.commands import BUILTIN, load_schema

    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    if name == "command.json":
        assert {f"{c}-args" for c in BUILTIN} <= set(schema["$defs"])
