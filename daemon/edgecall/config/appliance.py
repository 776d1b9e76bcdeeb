"""Identity of this appliance, used in MQTT topics and in every message."""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator

from edgecall.config.base import ConfigModel

IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ApplianceConfig(ConfigModel):
    site_id: str = Field(
        ...,
        pattern=IDENT,
        description="Branch/site identifier, e.g. 'shanghai-01'. Used in topics.",
    )
    appliance_id: str = Field(
        ...,
        pattern=IDENT,
        description="Identifier of this box, unique within the site; also the MQTT client id.",
    )
    default_language: str = Field(
        "zh",
        pattern=r"^(zh|en)$",
        description="Language assumed for a call whose line or campaign does not set one.",
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone of the callers, e.g. 'Asia/Shanghai', for times they say "
        "('call me after 3'); null: the system's local time zone.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return value if value is None else known_time_zone(value)

    def zone(self) -> tzinfo | None:
        """The callers' time zone; None: the system's local one."""
        return ZoneInfo(self.timezone) if self.timezone else None


def known_time_zone(value: str) -> str:
    """`value` if it is an IANA time zone, else ValueError naming near ones (config
    fields and customer lists alike)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        near = sorted(z for z in available_timezones() if z.split("/")[-1] in value)[:3]
        hint = f"; did you mean {', '.join(near)}?" if near else " (e.g. Asia/Shanghai)"
        raise ValueError(f"unknown time zone {value!r}{hint}") from None
    return value
