"""The whole of config.yaml."""

from __future__ import annotations

from pydantic import Field, model_validator

from edgecall.capacity import analysed_calls
from edgecall.config.appliance import ApplianceConfig
from edgecall.config.base import ConfigModel, FieldError
from edgecall.config.language import LANGUAGES, LanguagePack, Topic
from edgecall.config.models import ModelsConfig
from edgecall.config.mqtt import MqttConfig
from edgecall.config.rules import RulesConfig
from edgecall.config.scripts import AssistConfig, Campaign
from edgecall.config.sip import PJSUA_MAX_CALLS_BUILT, SipConfig
from edgecall.config.storage import LoggingConfig, StorageConfig
from edgecall.config.trunk import TrunkConfig


class EdgecallConfig(ConfigModel):
    appliance: ApplianceConfig = Field(..., description="Identity of this appliance.")
    sip: SipConfig = Field(..., description="The SIP extension on the PBX.")
    trunk: TrunkConfig = Field(
        default_factory=TrunkConfig, description="Call quality sources and SMS."
    )
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="On-device models.")
    rules: RulesConfig = Field(
        default_factory=RulesConfig, description="Call rules and thresholds."
    )
    languages: dict[str, LanguagePack] = Field(..., description="Lexicons per language (zh, en).")
    topics: dict[str, Topic] = Field(..., description="Topics and their synonyms.")
    campaigns: dict[str, Campaign] = Field(..., min_length=1, description="Scripts per campaign.")
    default_campaign: str = Field(..., description="Campaign used when a call names none.")
    assist: AssistConfig = Field(default_factory=AssistConfig, description="Agent assist.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Link to head office.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="State on disk.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")

    @model_validator(mode="after")
    def _cross_checks(self) -> EdgecallConfig:
        for lang in self.languages:
            if lang not in LANGUAGES:
                raise FieldError(("languages", lang), f"unknown language {lang!r} (use zh or en)")
        if self.appliance.default_language not in self.languages:
            raise FieldError(
                ("appliance", "default_language"),
                f"{self.appliance.default_language!r} has no lexicon in languages",
            )
        if self.default_campaign not in self.campaigns:
            raise FieldError(
                ("default_campaign",), f"{self.default_campaign!r} is not in campaigns"
            )
        for name, campaign in self.campaigns.items():
            if campaign.language not in self.languages:
                raise FieldError(
                    ("campaigns", name, "language"), f"{campaign.language!r} has no lexicon"
                )
            unknown = [t for t in campaign.followups if t not in self.topics]
            if unknown:
                raise FieldError(
                    ("campaigns", name, "followups", unknown[0]), f"unknown topic {unknown[0]!r}"
                )
        for i, rule in enumerate(self.sip.auto_answer):
            if rule.campaign is not None and rule.campaign not in self.campaigns:
                raise FieldError(
                    ("sip", "auto_answer", i, "campaign"), f"unknown campaign {rule.campaign!r}"
                )
        if not self.sip._auto_calls:
            return self
        calls = analysed_calls(
            int(self.models.workers),
            {c.language for c in self.campaigns.values()},
            PJSUA_MAX_CALLS_BUILT,
        )
        self.sip.check_port_range(calls, at=("sip",))
        self.sip.resolve_call_limit(calls)
        return self
