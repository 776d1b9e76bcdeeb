"""Identity of this appliance, used in MQTT topics and in every message."""

from __future__ import annotations

from pydantic import Field

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
