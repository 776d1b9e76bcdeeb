"""The do-not-call list: one spelling per phone, idempotent, on disk, paged; its commands."""

from __future__ import annotations

import sqlite3

import pytest
from jsonschema import Draft202012Validator

from edgecall.dnc import DncCommands, DoNotCallList, normalise
from edgecall.mqtt.commands import CommandRegistry, load_schema

T = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("given", "listed_as"),
    [
        ("+8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("00 86 (138) 0013.8000", "+8613800138000"),
        ("  +8613800138000\n", "+8613800138000"),
        ("＋８６１３８００１３８０００", "+8613800138000"),  # full-width, Chinese keyboard
        ("sip:+8613800138000@pbx", "+8613800138000"),
        ("sips:+8613800138000@pbx.example:5061;transport=tls", "+8613800138000"),
        ('"Li Lei" <sip:+8613800138000@10.0.0.1;user=phone>', "+8613800138000"),
        ("SIP:008613800138000@pbx", "+8613800138000"),
        ("sip:+86138%2D0013%2D8000@pbx", "+8613800138000"),  # percent-escaped '-'
        ("sip:1002:secret@pbx", "1002"),  # password is not part of the number
        ("tel:+86-138-0013-8000;phone-context=example.com", "+8613800138000"),
        ("+44 (0)20 7946 0000", "+442079460000"),
        ("13800138000", "13800138000"),  # national stays national: no country assumed
        ("138-0013-8000", "13800138000"),
        ("0755 1234 5678", "075512345678"),  # a trunk prefix '0' is kept
        ("*123#", "*123#"),  # PBX feature code
    ],
)
def test_normalise_makes_one_spelling_of_a_phone(given: str, listed_as: str):
    assert normalise(given) == listed_as


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("- ( ) .", "empty"),
        ("**#", "no digits"),
        ("sip:alice@pbx", "only digits"),
        ("call me", "only digits"),
        ("138 0013 8000 ext 12", "only digits"),
        ("86+13800138000", "only digits"),
        ("+", "E.164"),
        ("00", "E.164"),
        ("+0086138", "E.164"),  # a country code never starts with 0
        ("+86 138*", "E.164"),
        ("+1234567890123456", "E.164"),  # 16 digits
        ("1" * 33, "longer than 32"),
    ],
)
def test_normalise_refuses_what_is_not_a_number_and_says_why(given: str, why: str):
    with pytest.raises(ValueError, match=why):
        normalise(given)


def test_national_and_international_spellings_stay_apart():
    assert normalise("13800138000") != normalise("+8613800138000")
    assert normalise("011 86 138 0013 8000") == "0118613800138000"  # 011 is not a prefix


def test_add_is_idempotent_and_keeps_the_first_entry(tmp_path):
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    assert dnc.add("+86 138 0013 8000", reason="caller asked", call_id="c-1", t=T) is True
    assert dnc.add("sip:+8613800138000@pbx", reason="again", call_id="c-2", t=T + 60) is False
    assert dnc.count() == 1
    entry = dnc.get("008613800138000")
    assert entry is not None
    assert (entry.number, entry.t, entry.reason, entry.call_id, entry.source) == (
        "+8613800138000",
        T,
        "caller asked",
        "c-1",
        "caller",
    )
    assert entry.to_json()["added"] == "2027-01-15T08:00:00.000Z"
    assert dnc.contains("+8613800138000") and not dnc.contains("13800138000")


def test_bad_numbers_are_refused_and_never_listed(tmp_path):
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    with pytest.raises(ValueError, match="not a phone number"):
        dnc.add("", reason="x", call_id=None, t=T)
    with pytest.raises(ValueError, match="not a phone number"):
        dnc.add_many(["+8613800138000", "abc"], reason="x", t=T)
    assert dnc.count() == 0  # one bad number in a batch adds none
    with pytest.raises(ValueError):
        dnc.remove("abc")
    assert dnc.contains("abc") is False  # asking about a non-number is not an error
    assert dnc.get("") is None


def test_list_survives_a_restart(tmp_path):
    path = tmp_path / "state" / "dnc.sqlite"
    dnc = DoNotCallList(path)
    dnc.add("13800138000", reason="caller asked", call_id="c-9", t=T)
    dnc.add_many(["+8613900139000"], reason="complaint", t=T + 1)
    dnc.close()
    dnc = DoNotCallList(path)
    assert dnc.count() == 2
    assert dnc.contains("138 0013 8000")
    assert dnc.get("+8613900139000").source == "head_office"
    assert dnc.get("+8613900139000").reason == "complaint"
    # The file is plain SQLite, for a technician's backup or audit.
    dnc.close()
    rows = sqlite3.connect(path).execute("SELECT number, source FROM dnc ORDER BY number")
    assert rows.fetchall() == [("+8613900139000", "head_office"), ("13800138000", "caller")]


def test_remove(tmp_path):
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    dnc.add_many(["+8613800138000", "13900139000"], reason="x", t=T)
    assert dnc.remove("0086 138 0013 8000") is True
    assert dnc.remove("+8613800138000") is False
    assert dnc.remove_many(["13900139000", "13700137000"]) == [True, False]
    assert dnc.count() == 0 and not dnc.contains("13900139000")


def test_entries_page_through_the_whole_list_once(tmp_path):
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    numbers = [f"1380013{i:04d}" for i in range(25)]
    dnc.add_many(reversed(numbers), reason="x", t=T)
    seen, after = [], None
    while page := dnc.entries(limit=10, after=after):
        assert len(page) <= 10
        seen += [e.number for e in page]
        after = page[-1].number
        dnc.add("+8613800000000", reason="x", call_id=None, t=T)  # sorts first: no shift
    assert seen == sorted(numbers)
    assert len(dnc.entries(limit=1000)) == 26
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            dnc.entries(limit=bad)


# --- the commands, through the registry the link uses (real broker: tests/mqtt) ---------


@pytest.fixture
def registry(tmp_path):
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    reg = CommandRegistry(max_bytes=65536)
    DncCommands(dnc, clock=lambda: T).register(reg)
    return reg, dnc


async def run(reg: CommandRegistry, name: str, rid: str, **args) -> dict:
    import json

    reply = await reg.handle(name, json.dumps({"request_id": rid, "args": args}).encode())
    assert reply["request_id"] == rid and reply["command"] == name
    return reply


async def test_commands_add_list_remove(registry):
    reg, dnc = registry
    r = await run(reg, "dnc-add", "a1", numbers=["+86 138 0013 8000", "13900139000"])
    assert r["result"] == {"added": 2, "already_listed": 0, "count": 2}
    r = await run(reg, "dnc-add", "a2", numbers=["008613800138000"], reason="complaint")
    assert r["result"] == {"added": 0, "already_listed": 1, "count": 2}
    assert dnc.get("13900139000").reason == "requested by head office"

    r = await run(reg, "dnc-list", "l1", limit=1)
    assert r["result"]["entries"] == [
        {
            "number": "+8613800138000",
            "added": "2027-01-15T08:00:00.000Z",
            "reason": "requested by head office",
            "call_id": None,
            "source": "head_office",
        }
    ]
    assert r["result"]["count"] == 2 and r["result"]["next_after"] == "+8613800138000"
    r = await run(reg, "dnc-list", "l2", limit=1, after="+8613800138000")
    assert [e["number"] for e in r["result"]["entries"]] == ["13900139000"]
    assert r["result"]["next_after"] is None
    r = await run(reg, "dnc-list", "l3", number="sip:13900139000@pbx")
    assert [e["number"] for e in r["result"]["entries"]] == ["13900139000"]
    r = await run(reg, "dnc-list", "l4", number="13700137000")
    assert r["result"]["entries"] == []

    r = await run(reg, "dnc-remove", "r1", numbers=["139-0013-9000", "13700137000"])
    assert r["result"] == {"removed": 1, "not_listed": 1, "count": 1}
    r = await run(reg, "dnc-list", "l5")
    assert [e["number"] for e in r["result"]["entries"]] == ["+8613800138000"]


async def test_commands_refuse_malformed_input_and_change_nothing(registry):
    reg, dnc = registry
    r = await run(reg, "dnc-add", "b1", numbers=["13800138000", "call me", "", "sip:bob@pbx"])
    assert r["ok"] is False and r["error"]["code"] == "invalid"  # "" fails the schema
    r = await run(reg, "dnc-add", "b2", numbers=["13800138000", "call me", "sip:bob@pbx"])
    assert r["ok"] is False and r["error"]["code"] == "invalid_number"
    assert "numbers/1: 'call me' is not a phone number" in r["error"]["message"]
    assert "numbers/2: 'sip:bob@pbx'" in r["error"]["message"]
    assert dnc.count() == 0
    r = await run(reg, "dnc-remove", "b3", numbers=["+"])
    assert r["error"]["code"] == "invalid_number" and "numbers/0" in r["error"]["message"]
    r = await run(reg, "dnc-list", "b4", number="nobody")
    assert r["error"]["code"] == "invalid_number" and r["error"]["message"].startswith("number:")
    for rid, args in [
        ("c1", {}),
        ("c2", {"numbers": []}),
        ("c3", {"numbers": "13800138000"}),
        ("c4", {"numbers": ["13800138000"], "source": "caller"}),
    ]:
        assert (await run(reg, "dnc-add", rid, **args))["error"]["code"] == "invalid"
    for rid, args in [
        ("d1", {"limit": 0}),
        ("d2", {"limit": 1001}),
        ("d3", {"limit": "10"}),
        ("d4", {"number": "13800138000", "after": "1"}),
        ("d5", {"page": 2}),
    ]:
        assert (await run(reg, "dnc-list", rid, **args))["error"]["code"] == "invalid"


def test_schemas_are_valid():
    schema = load_schema("command.json")
    for name in ("dnc-add", "dnc-remove", "dnc-list"):
        Draft202012Validator.check_schema(schema["$defs"][f"{name}-args"])
    Draft202012Validator.check_schema(load_schema("dial-skipped.json"))


def test_the_list_file_is_configurable_in_the_storage_section():
    from edgecall.config.storage import StorageConfig

    assert StorageConfig().dnc_file == "dnc.sqlite"
    assert StorageConfig.model_validate({"dnc_file": "lists/dnc.sqlite"}).dnc_file
    with pytest.raises(ValueError):
        StorageConfig.model_validate({"dnc_file": ""})
