"""Every threshold, weight, window and delay of call-rules.md, with its default."""

from __future__ import annotations

from pydantic import Field, model_validator

from edgecall.config.base import ConfigModel, FieldError

_SUM_TOLERANCE = 1e-9


class EmotionRuleConfig(ConfigModel):
    """Section 1: fuse a lexicon (text) estimate and an acoustic estimate, each in [-1, 1]."""

    text_weight: float = Field(0.4, ge=0, le=1, description="Weight of the text/lexicon estimate.")
    acoustic_weight: float = Field(0.6, ge=0, le=1, description="Weight of the acoustic estimate.")
    negative_max: float = Field(
        -0.2, ge=-1, le=1, description="Fused score at or below this is negative (-1)."
    )
    positive_min: float = Field(
        0.2, ge=-1, le=1, description="Fused score at or above this is positive (1)."
    )

    @model_validator(mode="after")
    def _checks(self) -> EmotionRuleConfig:
        if abs(self.text_weight + self.acoustic_weight - 1) > _SUM_TOLERANCE:
            raise FieldError(("acoustic_weight",), "text_weight + acoustic_weight must be 1")
        if not self.negative_max < self.positive_min:
            raise FieldError(("positive_min",), "negative_max must be below positive_min")
        return self


class IntentRuleConfig(ConfigModel):
    """Section 1: the parametric purchase-intent formula of seed 000."""

    weight_turns: float = Field(0.3, ge=0, le=1, description="Weight of the dialogue-turn count.")
    weight_positive: float = Field(
        0.3, ge=0, le=1, description="Weight of positive-word occurrences."
    )
    weight_negative: float = Field(
        0.3, ge=0, le=1, description="Weight of negative-word occurrences."
    )
    weight_price: float = Field(0.1, ge=0, le=1, description="Weight of price inquiries.")
    turns_cap: float = Field(5, gt=0, description="Turn count that normalises to 1.")
    positive_cap: float = Field(2.5, gt=0, description="Positive-word count that normalises to 1.")
    negative_cap: float = Field(
        3, gt=0, description="Negative-word count that normalises to 0 (0 words give 1)."
    )
    price_cap: float = Field(2, gt=0, description="Price-inquiry count that normalises to 1.")
    negative_max: float = Field(
        0.36, ge=0, le=1, description="Intent at or below this is negative."
    )
    positive_min: float = Field(
        0.64, ge=0, le=1, description="Intent at or above this is positive."
    )

    @model_validator(mode="after")
    def _checks(self) -> IntentRuleConfig:
        total = self.weight_turns + self.weight_positive + self.weight_negative + self.weight_price
        if abs(total - 1) > _SUM_TOLERANCE:
            raise FieldError(
                ("weight_price",), f"intent weights must sum to 1 (they sum to {total:g})"
            )
        if not self.negative_max < self.positive_min:
            raise FieldError(("positive_min",), "negative_max must be below positive_min")
        return self


class TransferRuleConfig(ConfigModel):
    """Section 3: interest followed by frustration goes to a human."""

    enabled: bool = Field(True, description="Transfer to a human agent when the rule fires.")
    intent_positive_turns: int = Field(
        2, ge=1, le=20, description="Consecutive turns of positive intent required."
    )
    emotion_negative_turns: int = Field(
        2, ge=1, le=20, description="Consecutive turns of negative emotion required."
    )
    require_prior_positive_emotion: bool = Field(
        True,
        description="Only fire when emotion was positive at some turn before turning negative.",
    )


class PoorSignalRuleConfig(ConfigModel):
    """Section 4: real-time sliding window over the per-second quality."""

    enabled: bool = Field(True, description="Warn, hang up and send the SMS when the rule fires.")
    window_samples: int = Field(5, ge=1, le=600, description="Samples in the sliding window.")
    min_poor_samples: int = Field(
        3,
        ge=1,
        le=600,
        description="Poor samples in the window that fire the rule (default: more than half of 5).",
    )
    min_quality_dbm: float = Field(
        -120.0, ge=-150, le=0, description="A sample strictly below this is poor."
    )

    @model_validator(mode="after")
    def _checks(self) -> PoorSignalRuleConfig:
        if self.min_poor_samples > self.window_samples:
            raise FieldError(("min_poor_samples",), "cannot exceed window_samples")
        return self


class DelayRange(ConfigModel):
    min_s: int = Field(..., ge=0, le=7 * 86400, description="Shortest redial delay in seconds.")
    max_s: int = Field(..., ge=0, le=7 * 86400, description="Longest redial delay in seconds.")

    @model_validator(mode="after")
    def _order(self) -> DelayRange:
        if self.min_s > self.max_s:
            raise FieldError(("max_s",), "min_s must be <= max_s")
        return self


class StatedReason(ConfigModel):
    """A reason the caller gives before hanging up; it decides the redial without the model."""

    scene: str = Field(..., description="Scene or situation name reported in the outcome.")
    delay: DelayRange = Field(..., description="Redial delay for this reason.")
    phrases: dict[str, list[str]] = Field(
        ..., description="Phrases per language ('zh', 'en') that state the reason."
    )


class RedialRuleConfig(ConfigModel):
    """Section 5: a call cut short in poor quality with interest is redialled later."""

    enabled: bool = Field(True, description="Schedule redials.")
    normal_quality_dbm: float = Field(
        -100.0, ge=-150, le=0, description="Global quality strictly below this counts as poor."
    )
    min_scene_confidence: float = Field(
        0.5, ge=0, le=1, description="Below this model confidence the 'unknown' delay is used."
    )
    scene_delays: dict[str, DelayRange] = Field(
        default_factory=lambda: {
            "elevator": DelayRange(min_s=60, max_s=180),
            "basement": DelayRange(min_s=480, max_s=900),
            "tunnel": DelayRange(min_s=480, max_s=900),
            "driving": DelayRange(min_s=300, max_s=600),
            "normal": DelayRange(min_s=300, max_s=600),
            "unknown": DelayRange(min_s=300, max_s=900),
        },
        description="Redial delay per scene; 'unknown' is used without a model or confident guess.",
    )
    stated_reasons: list[StatedReason] = Field(
        default_factory=list, description="Reasons stated by the caller, checked in order."
    )
    max_attempts: int = Field(
        3, ge=1, le=20, description="Redial one number at most this many times in a row."
    )

    @model_validator(mode="after")
    def _unknown(self) -> RedialRuleConfig:
        if "unknown" not in self.scene_delays:
            raise FieldError(("scene_delays",), "needs an 'unknown' entry")
        return self


class FailureFactorRuleConfig(ConfigModel):
    """Section 6: promote the dominant failure factor into the opening."""

    min_relative_lead: float = Field(
        0.5,
        ge=0,
        description="Top factor's share must exceed the second's by more than this, "
        "relatively (0.5 = 50%).",
    )
    min_failed_calls: int = Field(
        10, ge=1, description="Do not conclude anything from fewer failed calls."
    )
    recent_failed_calls: int = Field(
        100,
        ge=1,
        le=100_000,
        description="How many of the campaign's latest failed calls (in the call history) "
        "the analysis looks at, so the introduction follows what callers object to now.",
    )


class VariantRuleConfig(ConfigModel):
    """Seed 003 S5: prompt variants compete per customer group, and a group gets a script
    composed from its interests (the retirement floors are per campaign: `retire`)."""

    bandit: bool = Field(
        True,
        description="Choose each node's variant by Thompson sampling over its sales per "
        "customer group; false: every variant equally often, fixed per call.",
    )
    group_script_min_calls: int = Field(
        20,
        ge=1,
        description="A customer group gets a composed product introduction once this many "
        "of its calls named a topic.",
    )
    group_script_topics: int = Field(
        2,
        ge=1,
        le=5,
        description="How many of the group's most frequent topics the composed "
        "introduction explains first, most frequent first.",
    )


class FeedbackScoreConfig(ConfigModel):
    """Seed 002's feedback score of a reply (0-100): where the call ended, then how the
    caller's next turn moved."""

    sale: float = Field(80, ge=0, le=100, description="The call ended in a sale.")
    transferred: float = Field(60, ge=0, le=100, description="Put through to a human agent.")
    redial_scheduled: float = Field(50, ge=0, le=100, description="A callback was booked.")
    other: float = Field(30, ge=0, le=100, description="Any other end (declined, hung up...).")
    per_step: float = Field(
        10,
        ge=0,
        le=50,
        description="Added per step (-1, 0, 1) the caller's next turn moved up in emotion "
        "and in purchase intent (taken off per step down; at most two steps each).",
    )
    left: float = Field(
        -10,
        ge=-100,
        le=0,
        description="Added when the caller said nothing more after the reply and bought nothing.",
    )


class ReplyRuleConfig(ConfigModel):
    """Seed 002: a turn's candidate replies ranked by a model trained on the history."""

    learned: bool = Field(
        True,
        description="Rank a turn's candidate replies (a topic's answer, the factor's "
        "follow-up, soothing, the node's own step) with the model trained on this box's "
        "history, once one passed its held-out check; false: the rules' order alone.",
    )
    explore: float = Field(
        0.1,
        ge=0,
        le=0.5,
        description="Share of the turns with a choice that hear another candidate than the "
        "first, so the model learns what each earns (0: never; then nothing new is learned).",
    )
    feedback_threshold: float = Field(
        60.0,
        ge=0,
        le=100,
        description="A reply is a training sample when its feedback score (0-100, from the "
        "call's outcome and the caller's next turn) is above this (seed 002: 80 > 60).",
    )
    feedback: FeedbackScoreConfig = Field(
        default_factory=FeedbackScoreConfig, description="How a reply's feedback is scored."
    )
    min_samples: int = Field(
        50, ge=10, description="Do not train on fewer replies above the threshold."
    )
    holdout: float = Field(
        0.2,
        gt=0,
        lt=0.5,
        description="Share of the latest turns kept aside to check a new model against the "
        "model in use and the rules.",
    )
    retrain_calls: int = Field(
        200, ge=10, description="Train again after this many new finished calls."
    )
    retrain_at: str | None = Field(
        "03:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Also train each night at this local time ('HH:MM'); null: only by calls.",
    )


class InterestRuleConfig(ConfigModel):
    """Seed 003 S2-S4: customers' interests predicted from their list features."""

    enabled: bool = Field(
        True,
        description="Train the interest model with the reply model (edgecall.interest_training) "
        "and put each campaign customer whose list names no group in the group of the topic "
        "they most likely care about ('likes-<topic>'), whose introduction explains it first.",
    )
    threshold: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="A customer joins a topic's group only when the predicted chance that "
        "they care about it is at least this (with four topics, 0.3 is above the share "
        "who ask about any one of them).",
    )


class ConversationRuleConfig(ConfigModel):
    """What the robot does when the caller is silent, unclear or keeps refusing (issue 13)."""

    silence_s: float = Field(
        6.0,
        gt=0,
        le=60,
        description="Seconds without a sound from the caller after a prompt ended before "
        "the robot asks whether they are still there.",
    )
    silence_reprompts: int = Field(
        1, ge=0, le=5, description="Times the robot asks again after silence before it closes."
    )
    max_repeats: int = Field(
        2,
        ge=0,
        le=5,
        description="Times in a row the robot asks the caller to repeat what it did not "
        "understand before it closes the call.",
    )
    refusal_turns: int = Field(
        3,
        ge=1,
        description="A refusal persists after this many turns of negative purchase intent: "
        "the call goes to the flow's declined node.",
    )
    dtmf_human: str | None = Field(
        "0",
        pattern=r"^[0-9*#]$",
        description="Key that puts the caller through to a human agent at any node; "
        "null: no key does.",
    )
    callback_min_s: int = Field(
        300,
        ge=0,
        description="A callback the caller asked for is never booked sooner than this.",
    )


class RulesConfig(ConfigModel):
    conversation: ConversationRuleConfig = Field(
        default_factory=ConversationRuleConfig,
        description="Silence, repeats, persistent refusal and keys at any node of a flow.",
    )
    emotion: EmotionRuleConfig = Field(
        default_factory=EmotionRuleConfig, description="Emotion fusion."
    )
    intent: IntentRuleConfig = Field(
        default_factory=IntentRuleConfig, description="Purchase intent."
    )
    transfer: TransferRuleConfig = Field(
        default_factory=TransferRuleConfig, description="Transfer to a human agent."
    )
    poor_signal: PoorSignalRuleConfig = Field(
        default_factory=PoorSignalRuleConfig, description="Real-time poor-signal hang-up."
    )
    redial: RedialRuleConfig = Field(
        default_factory=RedialRuleConfig, description="Redial scheduling."
    )
    failure_factors: FailureFactorRuleConfig = Field(
        default_factory=FailureFactorRuleConfig, description="Failure-factor analysis."
    )
    replies: ReplyRuleConfig = Field(
        default_factory=ReplyRuleConfig, description="Replies learned from the call history."
    )
    interests: InterestRuleConfig = Field(
        default_factory=InterestRuleConfig, description="Customer interests from list features."
    )
    variants: VariantRuleConfig = Field(
        default_factory=VariantRuleConfig,
        description="Prompt variants per customer group, and scripts composed for groups.",
    )
