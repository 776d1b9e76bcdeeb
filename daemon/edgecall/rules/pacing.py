"""When a campaign may call a number, and what happens after a call (issue 18 part 4).

Times are in the callee's zone (`zone`; None: the system's local time).

Pure code over plain data: calling hours are windows per weekday in the callee's own
time zone; a number is first called in one of its preferred answer slots when one falls
in the calling hours soon, and after a call that did not connect it is called again
after the interval for that kind of non-answer, until `max_attempts`. Every number ends
in exactly one final state (`FINAL`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from edgecall.config.dialing import WEEKDAYS, DialingConfig

HORIZON_DAYS = 8  # calling hours are looked for this far ahead
NOT_CONNECTED = ("busy", "no_answer", "rejected", "failed")
# How a number's part in a campaign ends: its call's outcome, or one of these.
GIVEN_UP = "unreachable"  # max_attempts calls, none connected
BARRED = "do_not_call"  # on the do-not-call list when its turn came
STOPPED = "stopped"  # the campaign was stopped first


@dataclass(frozen=True)
class Window:
    start: time
    end: time  # exclusive; 24:00 is the end of the day


def windows(texts: Sequence[str]) -> list[Window]:
    out = []
    for text in texts:
        a, b = text.split("-")
        end = time.max if b == "24:00" else time.fromisoformat(b)
        out.append(Window(time.fromisoformat(a), end))
    return out


def _day_windows(hours: Mapping[str, Sequence[str]], day: datetime) -> list[Window]:
    return windows(hours.get(WEEKDAYS[day.weekday()], ()))


def in_hours(t: float, zone: tzinfo | None, hours: Mapping[str, Sequence[str]]) -> bool:
    local = datetime.fromtimestamp(t, zone)
    return any(w.start <= local.time() < w.end for w in _day_windows(hours, local))


def next_in_hours(
    t: float,
    zone: tzinfo | None,
    hours: Mapping[str, Sequence[str]],
    within: Sequence[Window] | None = None,
) -> float | None:
    """The earliest moment from `t` inside the calling hours (and, with `within`, inside
    one of those daily windows too); None: none in the next HORIZON_DAYS days."""
    local = datetime.fromtimestamp(t, zone)
    for days in range(HORIZON_DAYS):
        day = (local + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        spans = [(w.start, w.end) for w in _day_windows(hours, day)]
        if within is not None:
            spans = [(max(a, w.start), min(b, w.end)) for a, b in spans for w in within]
        for a, b in sorted(s for s in spans if s[0] < s[1]):
            start = datetime.combine(day.date(), a, zone)
            end = datetime.combine(day.date(), b, zone)
            if end > local:
                return max(start, local).timestamp()
    return None


def first_call(
    t: float,
    zone: tzinfo | None,
    cfg: DialingConfig,
    preferred: Sequence[Window] = (),
) -> float | None:
    """When to call a number for the first time."""
    if preferred and cfg.prefer_answer_slots:
        when = next_in_hours(t, zone, cfg.hours, preferred)
        if when is not None and when - t < 7 * 86400:
            return when
    return next_in_hours(t, zone, cfg.hours)


def call_at(
    now: float,
    zone: tzinfo | None,
    cfg: DialingConfig,
    *,
    first: bool,
    preferred: Sequence[Window] = (),
    slack_s: float = 1.0,
) -> float:
    """When a due number should be called: `now`, or later (the next calling hours; a
    first call, the customer's preferred slot). Eight days on when the hours have none."""
    if not in_hours(now, zone, cfg.hours):
        when = next_in_hours(now, zone, cfg.hours)
        return when if when is not None else now + HORIZON_DAYS * 86400
    if first and preferred:
        when = first_call(now, zone, cfg, preferred)
        if when is not None and when > now + slack_s:
            return when
    return now


@dataclass(frozen=True)
class Next:
    """After a call: `retry_at` to call again, else the number's `final` state."""

    retry_at: float | None = None
    final: str | None = None


def after_call(
    outcome: str,
    reason: str | None,
    attempts: int,
    t: float,
    cfg: DialingConfig,
    due: float | None = None,
) -> Next:
    """`outcome` of the call just made (the `outcome` field of its outcome message) and,
    for not_connected, its `reason`; `attempts` made so far, this one included; `due`:
    when a redial_scheduled outcome asks to call again (the caller's time, the scene's
    delay). That redial is the number's next attempt, within its calling hours; past
    `max_attempts` the number ends as redial_scheduled, not called again."""
    if outcome == "redial_scheduled" and due is not None and attempts < cfg.max_attempts:
        return Next(retry_at=due)
    if outcome != "not_connected":
        return Next(final=outcome)
    if attempts >= cfg.max_attempts:
        return Next(final=GIVEN_UP)
    delay = getattr(cfg.retry_s, reason if reason in NOT_CONNECTED else "failed")
    return Next(retry_at=t + delay)
