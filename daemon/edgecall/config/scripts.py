"""Prompts and scripts per campaign (call-rules.md section 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgecall.config.base import ConfigModel

REQUIRED_SITUATIONS = (
    "opening",
    "product_intro",
    "answer",
    "soothing",
    "closing",
    "network_problem",
    "transfer_notice",
)


class Prompt(ConfigModel):
    text: str = Field(..., min_length=1, description="What is said (also logged and published).")
    wav: Path | None = Field(
        None, description="Recorded prompt (16 kHz mono WAV); absent means text only (TTS later)."
    )


class RetireFloors(ConfigModel):
    """Scripts below these floors, after enough uses, are retired (seed 003)."""

    min_uses: int = Field(50, ge=1, description="Judge a script only after this many uses.")
    min_answer_rate: float = Field(
        0.2, ge=0, le=1, description="Share of uses the caller answered."
    )
    min_mean_talk_s: float = Field(10.0, ge=0, description="Mean talk time after the script.")


class Campaign(ConfigModel):
    language: Literal["zh", "en"] = Field(..., description="Language of this campaign's calls.")
    product: str = Field(..., min_length=1, description="Product offered, for outcomes and assist.")
    prompts: dict[str, Prompt] = Field(
        ...,
        description="Prompt per situation; needs " + ", ".join(REQUIRED_SITUATIONS) + ".",
    )
    followups: dict[str, Prompt] = Field(
        default_factory=dict,
        description="Follow-up per influencing-factor topic (e.g. 'price': a further discount).",
    )
    poor_signal_sms: str = Field(
        ...,
        min_length=1,
        description="SMS sent after a poor-signal hang-up; '{product}' is replaced.",
    )
    retire: RetireFloors = Field(
        default_factory=RetireFloors, description="Script retirement floors."
    )


class TimeSlot(ConfigModel):
    name: str = Field(..., description="Name of the slot, e.g. 'morning'.")
    start: str = Field(
        ..., pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="Start, 'HH:MM' local."
    )
    end: str = Field(
        ..., pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="End (exclusive), 'HH:MM'."
    )


class AssistConfig(ConfigModel):
    """Agent assist for human agents (section 7)."""

    enabled: bool = Field(True, description="Push prompts to human agents during their calls.")
    time_slots: list[TimeSlot] = Field(
        default_factory=list, description="Call time slots that products are learned for."
    )
    products: list[str] = Field(
        default_factory=list, description="Products an agent may recommend."
    )
