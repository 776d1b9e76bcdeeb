"""How a campaign dials its customer list: calling hours, retries, pace (issue 18 part 4)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from edgecall.config.appliance import known_time_zone
from edgecall.config.base import ConfigModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _weekdays(hours: list[str]) -> dict[Weekday, list[str]]:
    return dict.fromkeys(WEEKDAYS[:5], hours)  # type: ignore[return-value]


class RetryIntervals(ConfigModel):
    """Seconds before calling a number again after each kind of call that did not connect."""

    busy: int = Field(600, ge=60, description="The line was busy (486/600).")
    no_answer: int = Field(3600, ge=60, description="It rang out (sip.ring_timeout_s).")
    rejected: int = Field(86400, ge=60, description="The callee declined the call (603).")
    failed: int = Field(1800, ge=60, description="The network could not reach the number.")


class DialingConfig(ConfigModel):
    hours: dict[Weekday, list[str]] = Field(
        default_factory=lambda: {
            **_weekdays(["09:00-12:00", "14:00-20:00"]),
            "sat": ["10:00-16:00"],
        },
        description="Calling hours per weekday in the callee's local time, as 'HH:MM-HH:MM' "
        "windows; a day not listed (or an empty list) has none.",
    )
    time_zone: str | None = Field(
        None,
        description="IANA time zone of callees whose customer list names none (e.g. "
        "'Asia/Shanghai'); null: the appliance's.",
    )
    max_attempts: int = Field(
        3, ge=1, le=20, description="Calls to one number before it is given up as unreachable."
    )
    retry_s: RetryIntervals = Field(
        default_factory=RetryIntervals, description="When to call again, per kind of non-answer."
    )
    max_concurrent_calls: int | None = Field(
        None,
        ge=1,
        description="At most this many of the campaign's calls at once; null: "
        "as many as the box has room for (sip.max_concurrent_calls).",
    )
    prefer_answer_slots: bool = Field(
        True,
        description="A customer whose list names answer_slots is first called within one "
        "of them (assist.time_slots of that name) when one falls in the calling hours of "
        "the next 7 days.",
    )

    @field_validator("hours")
    @classmethod
    def _windows(cls, hours: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for day, windows in hours.items():
            for w in windows:
                m = WINDOW.match(w)
                if m is None:
                    raise ValueError(f"{day}: {w!r} is not 'HH:MM-HH:MM'")
                if (int(m[1]), int(m[2])) >= (int(m[3]), int(m[4])):
                    raise ValueError(f"{day}: {w!r} ends before it starts")
        return hours

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return name if name is None else known_time_zone(name)
