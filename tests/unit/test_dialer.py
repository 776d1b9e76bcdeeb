"""Dial lists and redials survive restarts, come out in due order, and can be cancelled."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from edgecall.appliance import Appliance
from edgecall.campaign_queue import CampaignQueue
from edgecall.dialer import DialQueue
from edgecall.dnc import DoNotCallList
from edgecall.mqtt.commands import CommandRequest
from edgecall.validation import validator

NOW = 1_800_000_000.0


def redial_outcome(call_id: str, number: str, due: str) -> dict:
    return {
        "outcome": "redial_scheduled",
        "call_id": call_id,
        "number": number,
        "due": due,
        "ref": "crm-7",
        "campaign": "retail-zh",
        "language": "zh",
    }


def test_dial_list_in_order_and_capacity_limited(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    q.add_many([{"number": f"10{i}", "ref": f"r{i}"} for i in range(5)], NOW)
    first = q.due(NOW, 2)
    assert [i.number for i in first] == ["100", "101"]
    assert q.due(NOW, 0) == []
    for item in first:
        q.remove(item.id)
    assert [i.number for i in q.due(NOW, 10)] == ["102", "103", "104"]
    assert q.due(NOW, 10)[0].ref == "r2"


def test_redial_is_due_at_its_time_and_survives_a_restart(tmp_path):
    path = tmp_path / "dials.sqlite"
    q = DialQueue(path)
    rid = q.schedule_redial(
        redial_outcome("c1", "+8613800000003", "2027-01-15T08:02:00.000Z"),
        attempt=1,
        max_attempts=3,
    )
    assert rid is not None
    q.close()
    q = DialQueue(path)
    due = 1_800_000_000 + 0  # 2027-01-15T08:00:00Z
    assert q.due(due, 5) == []
    (item,) = q.due(due + 120, 5)
    assert (item.kind, item.attempt, item.origin_call_id, item.ref) == ("redial", 2, "c1", "crm-7")
    assert q.next_due() == due + 120


def test_redials_stop_after_max_attempts(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    outcome = redial_outcome("c1", "+1555", "2027-01-15T08:02:00Z")
    assert q.schedule_redial(outcome, attempt=2, max_attempts=3) is not None
    assert q.schedule_redial(outcome, attempt=3, max_attempts=3) is None
    assert q.schedule_redial({"outcome": "failed"}, attempt=1, max_attempts=3) is None


def test_cancel_redials_by_call_number_or_all_but_never_first_dials(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    q.add_many([{"number": "+1555"}], NOW)
    for i, number in enumerate(["+1555", "+1555", "+1666", "+1777"]):
        q.schedule_redial(
            redial_outcome(f"c{i}", number, "2027-01-15T08:02:00Z"), attempt=1, max_attempts=3
        )
    assert q.cancel_redials(call_id="c3") == 1
    assert q.cancel_redials(number="+1555") == 2
    assert q.counts() == {"dial": 1, "redial": 1}
    assert q.cancel_redials(all=True) == 1
    assert q.counts() == {"dial": 1, "redial": 0}


# --- the do-not-call list -----------------------------------------------------------------


def test_due_split_sets_listed_numbers_apart_without_using_capacity(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    dnc.add("+8613800138000", reason="caller asked", call_id="c0", t=NOW)
    q.add_many(
        [
            {"number": "0086 138 0013 8000"},  # another spelling of the listed number
            {"number": "+8613800138000"},
            {"number": "13900139000"},
            {"number": "+8613800138000"},
            {"number": "13700137000"},
            {"number": "13600136000"},
        ],
        NOW,
    )
    ready, barred = q.due_split(NOW, 2, dnc.contains)
    assert [i.number for i in ready] == ["13900139000", "13700137000"]
    # the barred ones ahead of and among the two to dial; "13600136000" waits for capacity
    assert [i.number for i in barred] == [
        "0086 138 0013 8000",
        "+8613800138000",
        "+8613800138000",
    ]
    assert q.counts()["dial"] == 6  # nothing removed: the caller removes what it handled
    assert q.due_split(NOW, 0, dnc.contains) == ([], [])
    assert q.due_split(NOW - 1, 5, dnc.contains) == ([], [])  # not due yet


class FakeLink:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict]] = []

    async def publish_other(self, subtopic: str, message: dict) -> str:
        self.published.append((subtopic, message))
        return message["message_id"]


@pytest.fixture
def appliance(tmp_path, monkeypatch):
    """The daemon's dialing part, with the queue and list on disk and no SIP or broker;
    of the config it reads the identity, the call capacity and the campaign names."""
    cfg = SimpleNamespace(
        appliance=SimpleNamespace(site_id="site-1", appliance_id="box-1"),
        sip=SimpleNamespace(max_concurrent_calls=4),
        campaigns={"retail-zh": object()},
    )
    app = Appliance(tmp_path / "config.yaml", cfg, notifier=None)
    app.dials = DialQueue(tmp_path / "dials.sqlite")
    app.campaigns = CampaignQueue(tmp_path / "dials.sqlite", now=NOW)  # no campaign runs
    app.dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    app.link = FakeLink()
    app.telephony = SimpleNamespace(registered=True)
    app.dialled = []

    async def originate(item):
        app.dialled.append(item)

    monkeypatch.setattr(app, "_originate", originate)
    return app


async def test_listed_numbers_are_dropped_and_reported_unlisted_still_dial(appliance):
    app = appliance
    app.dnc.add("+8613800138000", reason="caller asked", call_id="c-17", t=NOW - 600)
    app.dials.add_many([{"number": "+8613800138000", "ref": "lead-1", "campaign": "x"}], NOW)
    app.dials.add_many([{"number": "13900139000", "ref": "lead-2"}], NOW)
    app.dials.schedule_redial(
        redial_outcome("c-17", "+8613800138000", "2027-01-15T08:02:00Z"),
        attempt=1,
        max_attempts=3,
    )
    await app._dial_due(NOW + 120)

    assert [(i.number, i.ref) for i in app.dialled] == [("13900139000", "lead-2")]
    assert app.dials.counts() == {"dial": 0, "redial": 0}  # both barred items dropped
    assert [topic for topic, _ in app.link.published] == ["dials", "dials"]
    check = validator("dial-skipped.json")
    for _, message in app.link.published:
        check.validate(message)
    first, redial = (m for _, m in app.link.published)
    assert (first["kind"], first["ref"], first["attempt"], first["reason"]) == (
        "dial",
        "lead-1",
        1,
        "do_not_call",
    )
    assert first["due"] == "2027-01-15T08:00:00.000Z"
    assert first["dnc"] == {
        "number": "+8613800138000",
        "added": "2027-01-15T07:50:00.000Z",
        "reason": "caller asked",
        "call_id": "c-17",
        "source": "caller",
    }
    assert (redial["kind"], redial["origin_call_id"], redial["attempt"]) == ("redial", "c-17", 2)
    assert (redial["site_id"], redial["schema"]) == (
        app.identity.site_id,
        "edgecall.dial-skipped/1",
    )

    await app._dial_due(NOW + 240)  # reported once, not again
    assert len(app.link.published) == 2 and len(app.dialled) == 1


async def test_a_number_listed_after_queueing_is_still_never_dialled(appliance):
    app = appliance
    app.dials.add_many([{"number": "13800138000"}, {"number": "13900139000"}], NOW)
    app.dnc.add("138 0013 8000", reason="stop calling me", call_id="c-3", t=NOW)
    await app._dial_due(NOW)
    assert [i.number for i in app.dialled] == ["13900139000"]
    assert [m["number"] for _, m in app.link.published] == ["13800138000"]


async def test_dial_command_reports_listed_numbers_as_skipped(appliance):
    app = appliance
    app.dnc.add_many(["+8613800138000"], reason="complaint", t=NOW)
    request = CommandRequest(
        name="dial",
        request_id="r1",
        args={
            "numbers": [
                {"number": "008613800138000", "ref": "lead-1"},
                {"number": "13900139000", "ref": "lead-2"},
                {"number": "+8613800138000"},
            ],
            "language": "zh",
        },
    )
    result = await app._cmd_dial(request)
    assert result["queued"] == 1
    assert result["skipped"] == [
        {"number": "008613800138000", "ref": "lead-1", "reason": "do_not_call"},
        {"number": "+8613800138000", "ref": None, "reason": "do_not_call"},
    ]
    assert result["waiting"] == {"dial": 1, "redial": 0}
    (item,) = app.dials.due(time.time() + 1, 10)
    assert (item.number, item.ref, item.language) == ("13900139000", "lead-2", "zh")
    assert app.link.published == []  # the reply reports them; no message besides


def test_due_split_keeps_to_one_kind_and_placed_items_are_remembered(tmp_path):
    q = DialQueue(tmp_path / "dials.sqlite")
    q.add_many([{"number": "100"}], NOW)
    q.add("200", NOW, kind="redial", origin_call_id="c-1", attempt=2)
    listed = lambda n: False  # noqa: E731
    assert [i.number for i in q.due_split(NOW, 5, listed, "redial")[0]] == ["200"]
    assert [i.number for i in q.due_split(NOW, 5, listed, "dial")[0]] == ["100"]
    assert [i.number for i in q.due_split(NOW, 5, listed)[0]] == ["100", "200"]
    q.mark_placed("item-7")
    q.close()
    again = DialQueue(tmp_path / "dials.sqlite")
    assert again.placed_before("item-7") and not again.placed_before("item-8")


class FakeSiteWork:
    """What the dialer sees of edgecall.mqtt.site_work.SiteWork: items given, acks."""

    def __init__(self, items: list) -> None:
        from edgecall.mqtt.site_work import Held, SiteTopics

        self.topics = SiteTopics("edgecall/site-1/work", "edgecall-site-1")
        self.given = [Held(item, mid, 1, 0.0) for mid, item in enumerate(items, 1)]
        self.acked: list[int] = []
        self.connected = True  # in the site's group

    def take(self):
        return self.given.pop(0) if self.given else None

    def done(self, held) -> None:
        self.acked.append(held.mid)


async def test_with_site_work_due_redials_go_to_the_site_and_site_items_are_dialled(appliance):
    from edgecall.mqtt.site_work import WorkItem

    app = appliance
    published = []

    async def publish_to(topic, message, kind):
        published.append((topic, message, kind))
        return message["message_id"]

    app.link.publish_to = publish_to
    app.dnc.add("13800138000", reason="caller asked", call_id="c-3", t=NOW)
    app.site_work = FakeSiteWork(
        [
            WorkItem("w-1", "13900139000", "retail-zh", "zh", "lead-1"),
            WorkItem("w-2", "13800138000", ref="lead-2"),  # on the do-not-call list
            WorkItem("w-3", "13700137000", ref="lead-3", attempt=2, origin_call_id="c-9"),
        ]
    )
    app.dials.add_many([{"number": "13600136000", "ref": "own"}], NOW)
    app.dials.add("13500135000", NOW, kind="redial", ref="back", origin_call_id="c-5", attempt=2)

    await app._dial_due(NOW)

    ((topic, message, kind),) = published
    assert (topic, kind) == ("edgecall/site-1/work/dial", "request")
    validator("work-item.json").validate(message)
    assert (message["item_id"], message["number"], message["attempt"]) == (
        "redial-c-5-2",
        "13500135000",
        2,
    )
    assert app.dials.counts() == {"dial": 0, "redial": 0}
    assert [(i.number, i.ref, i.kind) for i in app.dialled] == [
        ("13600136000", "own", "dial"),
        ("13900139000", "lead-1", "dial"),
        ("13700137000", "lead-3", "redial"),
    ]
    assert app.dialled[2].origin_call_id == "c-9" and app.dialled[2].attempt == 2
    assert app.site_work.acked == [1, 2, 3]  # the barred one too: reported, not dialled
    assert [m["ref"] for t, m in app.link.published if t == "dials"] == ["lead-2"]
    assert app.dials.placed_before("w-1") and not app.dials.placed_before("w-2")


async def test_due_redials_wait_until_the_box_is_in_the_sites_group(appliance):
    app = appliance
    published = []

    async def publish_to(topic, message, kind):
        published.append(message)
        return message["message_id"]

    app.link.publish_to = publish_to
    app.site_work = FakeSiteWork([])
    app.site_work.connected = False  # the broker would drop it: no box in the group yet
    app.dials.add("13500135000", NOW, kind="redial", ref="back", origin_call_id="c-5", attempt=2)
    await app._dial_due(NOW)
    assert published == [] and app.dials.counts()["redial"] == 1
    app.site_work.connected = True
    await app._dial_due(NOW)
    assert [m["item_id"] for m in published] == ["redial-c-5-2"]
