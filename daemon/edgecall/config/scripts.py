"""Prompts and scripts per campaign (call-rules.md section 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecall.config.base import ConfigModel, FieldError, FieldErrors
from edgecall.config.dialing import DialingConfig
from edgecall.config.flows import Flow
from edgecall.speech.text import SLOTS, slots_in

# Prompts the built-in handling needs at any node of a flow; the flow's own nodes name
# the rest (opening, product introduction, offer...).
REQUIRED_SITUATIONS = (
    "soothing",  # negative emotion
    "repeat",  # the robot did not understand: please say it again
    "still_there",  # the caller has been silent
    "identify",  # "who is this?"
    "do_not_call",  # "stop calling me": acknowledged, then goodbye
    "callback",  # the caller gave a reason or a time to call back: goodbye until then
    "goodbye",  # the caller said goodbye, stayed silent or could not be understood
    "network_problem",  # poor signal: the call is about to end
    "transfer_notice",  # a human agent takes over
)


class Prompt(ConfigModel):
    text: str = Field(
        ...,
        min_length=1,
        description="What is said (also logged and published); may name slots in braces: "
        "{product} (the campaign's), {number_tail} (last 4 digits of the caller's number).",
    )
    wav: Path | None = Field(
        None,
        description="Recorded prompt, any format sox reads (converted once to the call's "
        "rate); absent: the text is synthesized by the language's voice.",
    )

    @field_validator("text")
    @classmethod
    def _known_slots(cls, text: str) -> str:
        try:
            used = slots_in(text)
        except ValueError as exc:
            raise ValueError(f"malformed slot braces: {exc}") from None
        unknown = sorted(used - SLOTS)
        if unknown:
            raise ValueError(
                f"unknown slot {{{unknown[0]}}}; known: "
                + ", ".join(f"{{{s}}}" for s in sorted(SLOTS))
            )
        return text


class RetireFloors(ConfigModel):
    """When a prompt variant of a flow node is retired for a customer group (seed 003 S5);
    the node's last variant never is."""

    min_uses: int = Field(
        50, ge=1, description="Judge a variant only after this many uses in the group."
    )
    min_answer_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Retire a variant after which callers said something in fewer than "
        "this share of its uses.",
    )
    min_mean_talk_s: float = Field(
        10.0, ge=0, description="Retire a variant whose calls lasted less than this after it."
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Retire a variant once the group's best variant sells better with at "
        "least this posterior probability.",
    )


class Campaign(ConfigModel):
    language: Literal["zh", "en"] = Field(..., description="Language of this campaign's calls.")
    product: str = Field(..., min_length=1, description="Product offered, for outcomes and assist.")
    prompts: dict[str, Prompt] = Field(
        ...,
        description="The campaign's prompts by name: those the flow's nodes say, and "
        + ", ".join(REQUIRED_SITUATIONS)
        + " for what callers do at any node.",
    )
    flow: Flow = Field(..., description="The conversation: nodes, their prompts and answers.")
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
    dialing: DialingConfig = Field(
        default_factory=DialingConfig,
        description="How the campaign's customer list is dialled: calling hours, retries, pace.",
    )

    @model_validator(mode="after")
    def _prompts_exist(self) -> Campaign:
        errors = []
        missing = [s for s in REQUIRED_SITUATIONS if s not in self.prompts]
        if missing:
            errors.append(FieldError(("prompts",), f"missing {', '.join(missing)}"))
        known = "; prompts: " + ", ".join(self.prompts)
        for name, node in self.flow.nodes.items():
            for i, key in enumerate(node.say):
                if key not in self.prompts:
                    path = ("flow", "nodes", name, "say") + ((i,) if len(node.say) > 1 else ())
                    errors.append(FieldError(path, f"no prompt {key!r}{known}"))
            if node.reask is not None and node.reask not in self.prompts:
                path = ("flow", "nodes", name, "reask")
                errors.append(FieldError(path, f"no prompt {node.reask!r}{known}"))
        if errors:
            raise FieldErrors(errors)
        return self


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
