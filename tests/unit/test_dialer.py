"""Dial lists and redials survive restarts, come out in due order, and can be cancelled."""

from __future__ import annotations

from edgecall.dialer import DialQueue

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
