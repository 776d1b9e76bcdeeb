"""The head-office MQTT link and its durable outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecall.config.base import ConfigModel, FieldError, SecretRef
from edgecall.mqtt.topics import check_level, check_prefix


class MqttTlsConfig(ConfigModel):
    ca_file: Path = Field(
        ..., description="CA certificate (PEM) that signed the broker's certificate."
    )
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    insecure_skip_hostname_check: bool = Field(
        False,
        description="Accept a broker certificate whose name does not match the host. Tests only.",
    )

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class OutboxConfig(ConfigModel):
    file: str = Field(
        "outbox.sqlite",
        description="SQLite file of unacknowledged messages, relative to storage.state_dir.",
    )
    max_messages: int = Field(
        100_000,
        ge=100,
        description="Bound on queued messages. When full, the oldest per-turn events are dropped "
        "(and counted); outcomes are never dropped.",
    )
    max_inflight: int = Field(
        20,
        ge=1,
        le=1000,
        description="Messages published but not yet acknowledged (PUBACK) at once.",
    )
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous mode. FULL survives power loss (fsync per queued message); "
        "NORMAL survives a crash of the daemon but may lose the last messages on power loss.",
    )


class SiteWorkConfig(ConfigModel):
    """Boxes of one site sharing dial work through the broker (edgecall/mqtt/site_work.py)."""

    enabled: bool = Field(
        False,
        description="Take dial items from the site's shared work topic (an MQTT 5 broker, "
        "such as mosquitto 2, EMQX or HiveMQ) as well as dial commands sent to this box.",
    )
    topic: str | None = Field(
        None,
        description="Base topic of the site's work: items on <topic>/dial, notices of a box "
        "that died on <topic>/orphaned. Default 'edgecall/<site_id>/work'.",
    )
    group: str | None = Field(
        None,
        description="Shared-subscription group every box of the site joins; the broker gives "
        "each item to one member. Default 'edgecall-<site_id>'.",
    )
    takeover_after_s: int = Field(
        30,
        ge=1,
        le=3600,
        description="How long the broker waits for a box that vanished before a peer takes "
        "its unplaced items (the delay of the work session's Will). A box restarting within "
        "it gets its own items back.",
    )
    hand_back_after_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="An item this box was given but has had no room to place for this long "
        "(calls all busy, SIP down) goes back to the site's queue, for a box with room.",
    )
    session_expiry_s: int = Field(
        86400,
        ge=60,
        description="How long the broker keeps a vanished box's work session, and its "
        "items, if no peer is alive to take them over.",
    )

    @field_validator("topic")
    @classmethod
    def _topic_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_prefix(value)

    @field_validator("group")
    @classmethod
    def _group_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_level(value, "group")

    @model_validator(mode="after")
    def _will_before_expiry(self) -> SiteWorkConfig:
        if self.session_expiry_s <= self.takeover_after_s:
            raise FieldError(("session_expiry_s",), "must be longer than takeover_after_s")
        return self


class MqttConfig(ConfigModel):
    enabled: bool = Field(
        True, description="Set false to run without head office (messages still queue)."
    )
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    tls: MqttTlsConfig | None = Field(None, description="TLS settings; absent means plain TCP.")
    username: str | None = Field(None, description="User name for the broker, if it requires one.")
    password: SecretRef | None = Field(None, description="Where the broker password comes from.")
    topic_prefix: str | None = Field(
        None,
        description="Topic prefix; default 'edgecall/<site_id>/<appliance_id>'.",
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval in seconds.")
    reconnect_initial_s: float = Field(
        1.0, gt=0, description="First reconnect delay; doubles each failure, with jitter."
    )
    reconnect_max_s: float = Field(60.0, gt=0, description="Cap of the reconnect delay.")
    stats_interval_s: float = Field(
        30.0, gt=0, description="Period of the health message on <prefix>/stats."
    )
    max_command_bytes: int = Field(
        1_048_576,
        ge=256,
        le=64 * 1_048_576,
        description="Commands larger than this are refused with an error reply (a part of a "
        "customer list, list-import, must fit: 1 MiB holds about 8,000 rows).",
    )
    command_timeout_s: float = Field(
        30.0, gt=0, description="A command handler running longer than this gets a 'timeout' reply."
    )
    outbox: OutboxConfig = Field(
        default_factory=OutboxConfig, description="Durable outbox settings."
    )
    site_work: SiteWorkConfig = Field(
        default_factory=SiteWorkConfig,
        description="Sharing a site's dial work with its other boxes through the broker.",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_prefix(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise FieldError(("reconnect_max_s",), "must be >= reconnect_initial_s")
        if self.password is not None and self.username is None:
            raise FieldError(("password",), "password is set but username is not")
        return self
