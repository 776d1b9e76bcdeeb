"""Campaign runs over customer lists (issue 18 part 4): calling hours in the callee's
zone, preferred answer slots, retries per kind of non-answer, one final state per
number, across restarts; and the daemon's dial loop obeying all of it."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from edgecall.appliance import Appliance
from edgecall.campaign_queue import CampaignQueue
from edgecall.config.dialing import DialingConfig
from edgecall.config.loader import ConfigError
from edgecall.dnc import DoNotCallList
from edgecall.learning import Learning
from edgecall.mqtt.commands import CommandError, CommandRequest
from edgecall.rules.pacing import after_call, first_call, in_hours, next_in_hours, windows
from edgecall.validation import validator
from tests.unit.test_dialer import FakeLink

SH = ZoneInfo("Asia/Shanghai")
RULES = DialingConfig()  # mon-fri 09-12 and 14-20, sat 10-16, no sunday


def at(text: str, zone=SH) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(t: float, zone=SH) -> str:
    return datetime.fromtimestamp(t, zone).strftime("%a %H:%M")


@pytest.mark.parametrize(
    ("now", "allowed", "next_call"),
    [
        ("2027-01-18 08:00", False, "Mon 09:00"),  # a Monday morning, too early
        ("2027-01-18 10:30", True, "Mon 10:30"),
        ("2027-01-18 12:30", False, "Mon 14:00"),  # lunch
        ("2027-01-18 20:00", False, "Tue 09:00"),  # the end is exclusive
        ("2027-01-23 16:30", False, "Mon 09:00"),  # Saturday evening: no Sunday hours
    ],
)
def test_calling_hours_in_the_callees_zone(now, allowed, next_call):
    t = at(now)
    assert in_hours(t, SH, RULES.hours) is allowed
    assert local(next_in_hours(t, SH, RULES.hours), SH) == next_call
    # the same instant for a callee in London is another local time
    london = ZoneInfo("Europe/London")
    assert in_hours(t, london, RULES.hours) == in_hours(
        at(datetime.fromtimestamp(t, london).strftime("%Y-%m-%d %H:%M"), london),
        london,
        RULES.hours,
    )


def test_a_preferred_slot_moves_the_first_call_into_it():
    evening = windows(["18:00-22:00"])
    assert local(first_call(at("2027-01-18 10:00"), SH, RULES, evening)) == "Mon 18:00"
    assert local(first_call(at("2027-01-18 20:30"), SH, RULES, evening)) == "Tue 18:00"
    night = windows(["23:00-24:00"])  # never within calling hours: the hours alone
    assert local(first_call(at("2027-01-18 10:00"), SH, RULES, night)) == "Mon 10:00"
    off = RULES.model_copy(update={"prefer_answer_slots": False})
    assert local(first_call(at("2027-01-18 10:00"), SH, off, evening)) == "Mon 10:00"


def test_after_a_call_a_number_is_retried_per_kind_or_finished():
    t = 1000.0
    assert after_call("not_connected", "busy", 1, t, RULES).retry_at == t + 600
    assert after_call("not_connected", "no_answer", 2, t, RULES).retry_at == t + 3600
    assert after_call("not_connected", "rejected", 1, t, RULES).retry_at == t + 86400
    assert after_call("not_connected", "busy", 3, t, RULES).final == "unreachable"
    assert after_call("completed", None, 1, t, RULES).final == "completed"
    assert after_call("failed", None, 2, t, RULES).final == "failed"
    # a redial the call asked for is the next attempt, until max_attempts
    assert after_call("redial_scheduled", None, 1, t, RULES, due=t + 120).retry_at == t + 120
    assert after_call("redial_scheduled", None, 3, t, RULES, due=t + 120).final == (
        "redial_scheduled"
    )


@pytest.mark.parametrize(
    ("hours", "says"),
    [({"mon": ["9-17"]}, "not 'HH:MM-HH:MM'"), ({"mon": ["17:00-09:00"]}, "ends before")],
)
def test_calling_hours_are_checked_with_the_config(hours, says):
    with pytest.raises(ValueError, match=says):
        DialingConfig(hours=hours)
    with pytest.raises(ValueError, match="unknown time zone"):
        DialingConfig(time_zone="Mars/Olympus")


def customers(n: int, **extra) -> list[dict]:
    return [
        {"number": f"+861380000{i:04d}", "dial": f"+861380000{i:04d}", **extra} for i in range(n)
    ]


def test_a_run_keeps_every_number_to_one_final_state_across_restarts(tmp_path):
    path = tmp_path / "dials.sqlite"
    q = CampaignQueue(path, now=0.0)
    assert q.start("retail-zh", "oct", customers(4), now=10.0) == 4
    a, b, c, d = q.due("retail-zh", 10.0, 10)
    for e, call in ((a, "ca"), (b, "cb"), (c, "cc")):
        q.dialling(e.id, call)
    assert q.due("retail-zh", 10.0, 10) == [d]  # numbers being called are not due
    assert (
        q.finished("ca", {"outcome": "completed", "campaign": "retail-zh"}, 20.0, RULES)
        == "retail-zh"
    )
    q.finished("cb", {"outcome": "not_connected", "reason": "busy"}, 20.0, RULES)
    assert q.finished("unknown", {"outcome": "completed"}, 20.0, RULES) is None
    q.close()
    q = CampaignQueue(path, now=30.0)  # the box died during call cc: due again, attempt kept
    (again,) = [e for e in q.due("retail-zh", 30.0, 10) if e.id == c.id]
    assert again.attempts == 1
    assert [e.id for e in q.due("retail-zh", 620.0, 10)] == [d.id, c.id, b.id]  # b after 600 s
    assert q.start("retail-zh", "oct", customers(5), now=40.0) == 1  # only the new number
    q.barred(d.id)
    assert q.set_state("retail-zh", "stopped", 50.0)
    progress = q.progress("retail-zh")
    assert progress["finals"] == {"completed": 1, "do_not_call": 1, "stopped": 3}
    assert (progress["numbers"], progress["remaining"], progress["answered"]) == (5, 0, 1)
    assert (progress["dialled"], progress["calls"]) == (3, 3)
    assert q.due("retail-zh", 10_000.0, 10) == []
    assert not q.set_state("nope", "paused", 60.0)


def test_numbers_are_given_up_after_max_attempts_and_a_call_up_ends_with_its_outcome(tmp_path):
    q = CampaignQueue(tmp_path / "dials.sqlite", now=0.0)
    q.start("c", "l", customers(2), now=0.0)
    first, second = q.due("c", 0.0, 5)
    t = 0.0
    for attempt in range(RULES.max_attempts):
        q.dialling(first.id, f"x{attempt}")
        q.finished(f"x{attempt}", {"outcome": "not_connected", "reason": "no_answer"}, t, RULES)
        t += 3600
    q.dialling(second.id, "y")
    q.set_state("c", "stopped", t)
    q.finished("y", {"outcome": "completed"}, t, RULES)
    assert q.progress("c")["finals"] == {"unreachable": 1, "completed": 1}


def with_dialing(cfg, name: str, **changes):
    campaign = cfg.campaigns[name]
    dialing = campaign.dialing.model_copy(update=changes)
    campaigns = {**cfg.campaigns, name: campaign.model_copy(update={"dialing": dialing})}
    return cfg.model_copy(update={"campaigns": campaigns})


@pytest.fixture
def box(tmp_path, shipped_config):
    """The daemon's dial loop with the shipped config, its queues on disk, a fake SIP
    stack that records what it dials, and a fake link."""
    app = Appliance(tmp_path / "config.yaml", shipped_config, notifier=None)
    from edgecall.dialer import DialQueue
    from edgecall.history import History

    app.dials = DialQueue(tmp_path / "dials.sqlite")
    app.campaigns = CampaignQueue(tmp_path / "dials.sqlite", now=0.0)
    app.dnc = DoNotCallList(tmp_path / "dnc.sqlite")
    app.link = FakeLink()
    history = History(tmp_path / "history.sqlite", keep_days=90)
    app.learning = Learning(
        history,
        app.identity,
        app.link,
        config=lambda: app.cfg,
        renew=lambda: None,
        models_dir=tmp_path,
    )
    app.history = history
    app.dialled = []
    app.items = []

    async def originate(number):
        app.dialled.append(number)
        return f"call-{len(app.dialled)}"

    real = app._originate

    async def keep_item(item, placed=None):
        app.items.append(item)
        return await real(item, placed)

    app._originate = keep_item

    app.telephony = SimpleNamespace(registered=True, originate=originate)
    app._new_call = lambda *a, **kw: SimpleNamespace(call_id=a[0])

    async def nothing(*a):
        return None

    app._to_controller = nothing
    return app


async def test_the_dial_loop_obeys_hours_limits_and_the_do_not_call_list(box, tmp_path):
    from edgecall.customers import lines, read_list

    text = (
        "number,time_zone\n+8613800000001,\n+8613800000002,\n+8613800000003,\n"
        "13800000004,Europe/London\n"
    )
    read_list(lines(text), lambda b: box.history.store_customers(b, "retail-zh", "oct"))
    box.dnc.add("+86 138 0000 0002", reason="asked", call_id="old", t=0.0)
    box.cfg = with_dialing(box.cfg, "retail-zh", time_zone="Asia/Shanghai", max_concurrent_calls=2)
    reply = await box._cmd_campaign(
        CommandRequest("campaign-start", "r1", {"campaign": "retail-zh", "list": "oct"})
    )
    assert (reply["state"], reply["numbers"]) == ("running", 4)

    await box._dial_due(at("2027-01-18 08:00"))  # before Shanghai's hours; 00:00 in London
    assert box.dialled == []
    await box._dial_due(at("2027-01-18 09:00"))
    # at most 2 at once; 002 is barred; London (01:00 there) waits for its own hours
    assert box.dialled == ["+8613800000001", "+8613800000003"]
    box._campaign_outcome(
        "call-1",
        {"outcome": "not_connected", "reason": "busy", "campaign": "retail-zh"},
        at("2027-01-18 09:01"),
    )
    box._campaign_outcome(
        "call-2",
        {"outcome": "completed", "agreed": True, "campaign": "retail-zh"},
        at("2027-01-18 09:02"),
    )
    await box._dial_due(at("2027-01-18 09:05"))
    assert box.dialled == ["+8613800000001", "+8613800000003"]  # busy: again after 10 min
    await box._dial_due(at("2027-01-18 09:11"))
    assert box.dialled[-1] == "+8613800000001"
    await box._dial_due(at("2027-01-18 18:00"))  # 10:00 in London
    assert box.dialled[-1] == "13800000004"
    progress = box.campaigns.progress("retail-zh")
    assert progress["finals"] == {"completed": 1, "do_not_call": 1}
    assert progress["calling_now"] == 2 and progress["calls"] == 4
    published = [m for topic, m in box.link.published if topic == "campaigns"]
    assert published and all(validator("campaign-progress.json").is_valid(m) for m in published)

    paused = await box._cmd_campaign(
        CommandRequest("campaign-pause", "r2", {"campaign": "retail-zh"})
    )
    assert paused["state"] == "paused"
    with pytest.raises(CommandError, match="never started"):
        await box._cmd_campaign(CommandRequest("campaign-stop", "r3", {"campaign": "retail-en"}))
    with pytest.raises(CommandError, match="no customers"):
        await box._cmd_campaign(CommandRequest("campaign-start", "r4", {"campaign": "retail-en"}))


def test_a_campaigns_dialing_section_gets_file_and_line_errors(tmp_path):
    from edgecall.config.loader import load_model
    from edgecall.config.root import EdgecallConfig
    from tests.unit.test_config import REPO

    lines_ = (REPO / "config.yaml").read_text(encoding="utf-8").splitlines()
    hours = next(i for i, line in enumerate(lines_) if line.startswith("      hours: {mon:"))
    attempts = next(i for i, line in enumerate(lines_) if line == "      max_attempts: 3")
    lines_[hours] = '      hours: {mon: ["9-17"]}'
    lines_[attempts] = "      max_attempts: 0"
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines_) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_model(path, EdgecallConfig)
    found = {(i.field, i.line) for i in caught.value.issues}
    assert found == {
        ("campaigns.retail-zh.dialing.hours", hours + 1),
        ("campaigns.retail-zh.dialing.max_attempts", attempts + 1),
    }


def test_a_campaign_numbers_redial_is_its_next_attempt(tmp_path):
    q = CampaignQueue(tmp_path / "dials.sqlite", now=0.0)
    q.start("c", "l", customers(1), now=0.0)
    (entry,) = q.due("c", 0.0, 5)
    q.dialling(entry.id, "r1")
    due = "2027-01-15T08:10:00.000Z"  # the caller said when
    q.finished("r1", {"outcome": "redial_scheduled", "due": due}, 100.0, RULES)
    at_due = datetime.fromisoformat(due.replace("Z", "+00:00")).timestamp()
    assert q.due("c", at_due - 1, 5) == []
    (again,) = q.due("c", at_due, 5)
    assert again.attempts == 1 and q.progress("c")["remaining"] == 1


async def test_a_customer_without_a_group_is_called_in_their_predicted_interests_group(box):
    from datetime import date

    from edgecall.customers import lines, read_list
    from edgecall.interest_training import train
    from tests.unit.test_interests import population

    model, _ = train(population(300), ["price", "data"], date.today())
    model.save(box.learning.models_dir / "interest-model.json")
    box.learning.load_interest_model()
    text = (
        "number,categories,total_spend,group\n"
        "+8613800000001,prepaid,50,\n+8613800000002,video,900,vip\n"
    )
    read_list(lines(text), lambda b: box.history.store_customers(b, "retail-zh", "oct"))
    box.cfg = with_dialing(box.cfg, "retail-zh", time_zone="Asia/Shanghai")
    await box._cmd_campaign(
        CommandRequest("campaign-start", "r", {"campaign": "retail-zh", "list": "oct"})
    )
    await box._dial_due(at("2027-01-18 10:00"))
    first, second = box.items
    assert (first.group, second.group) == ("likes-price", "vip")  # head office's group stays
    assert first.interests["price"]["p"] > 0.5 and first.interests["price"]["reasons"]
    assert "likes-price" in box.history.group_scripts("retail-zh")
