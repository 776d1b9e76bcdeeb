"""Where the per-second call quality comes from, and how the explanatory SMS leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgecall.config.base import ConfigModel, FieldError

QualitySource = Literal["modem", "sip_header", "rtp"]


class ModemConfig(ConfigModel):
    device: Path | None = Field(
        None, description="Serial device of the GSM/LTE modem or gateway, e.g. /dev/ttyUSB2."
    )
    tcp: str | None = Field(
        None, description="'host:port' of a modem reached over TCP instead of serial."
    )
    baudrate: int = Field(115200, description="Serial line speed.")
    command_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Wait this long for a final result code."
    )
    vendor: Literal["generic", "quectel"] = Field(
        "generic", description="'quectel' also reads AT+QCSQ for the serving cell's RSRP."
    )
    reconnect_interval_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="After the port is lost, try to reopen it at most this often.",
    )

    @model_validator(mode="after")
    def _one_port(self) -> ModemConfig:
        if (self.device is None) == (self.tcp is None):
            raise ValueError("set exactly one of device, tcp")
        return self


class SipHeaderSourceConfig(ConfigModel):
    header: str = Field(
        "X-Signal-Strength", description="SIP header the trunk puts the caller's signal in."
    )
    pattern: str = Field(
        r"(-?\d+(?:\.\d+)?)",
        description="Regular expression whose first group is the value in dBm.",
    )
    stale_after_s: float = Field(
        30.0,
        gt=0,
        description="A header value older than this is no longer used; trunks that only "
        "send it on change need a long one.",
    )


class RtpMappingConfig(ConfigModel):
    """Maps RTP statistics onto the dBm scale, so one threshold serves every source.

    dBm = best_dbm - loss_pct * dbm_per_loss_pct - jitter_ms * dbm_per_jitter_ms
          - discard_pct * dbm_per_discard_pct, clamped to [floor_dbm, best_dbm].
    """

    best_dbm: float = Field(-70.0, description="Value reported for a flawless stream.")
    floor_dbm: float = Field(-130.0, description="Lowest value reported (no audio at all).")
    dbm_per_loss_pct: float = Field(
        2.5, ge=0, description="dB taken off per percent of packet loss."
    )
    dbm_per_jitter_ms: float = Field(
        0.3, ge=0, description="dB taken off per millisecond of jitter."
    )
    dbm_per_discard_pct: float = Field(
        1.5, ge=0, description="dB taken off per percent of jitter-buffer discards."
    )

    @model_validator(mode="after")
    def _order(self) -> RtpMappingConfig:
        if self.floor_dbm >= self.best_dbm:
            raise FieldError(("floor_dbm",), "must be below best_dbm")
        return self


class SmsConfig(ConfigModel):
    route: Literal["modem", "mqtt", "sip_message", "none"] = Field(
        "mqtt",
        description="How the poor-signal SMS leaves: the trunk modem, a request to head "
        "office over MQTT, a SIP MESSAGE to the trunk, or not at all.",
    )
    sip_message_uri: str | None = Field(
        None, description="Request-URI template for sip_message, '{number}' is replaced."
    )
    timeout_s: float = Field(30.0, gt=0, description="Give up on one SMS attempt after this long.")

    @model_validator(mode="after")
    def _uri(self) -> SmsConfig:
        if self.route == "sip_message" and not self.sip_message_uri:
            raise FieldError(("route",), "route 'sip_message' needs sip_message_uri")
        return self


class TrunkConfig(ConfigModel):
    sources: list[QualitySource] = Field(
        default_factory=lambda: ["sip_header", "rtp"],
        min_length=1,
        description="Quality sources, best first; each second the first that has a value is used.",
    )
    sample_interval_s: float = Field(
        1.0, gt=0, le=10, description="Sampling period of call quality."
    )
    stale_after_s: float = Field(
        3.0, gt=0, le=60, description="A modem or RTP value older than this is not used."
    )
    valid_dbm_min: float = Field(
        -150.0, description="Values below this are treated as faulty; the next source is used."
    )
    valid_dbm_max: float = Field(
        -20.0, description="Values above this are treated as faulty; the next source is used."
    )
    modem: ModemConfig | None = Field(
        None, description="The modem, needed by source or SMS route 'modem'."
    )
    sip_header: SipHeaderSourceConfig = Field(
        default_factory=SipHeaderSourceConfig, description="Settings of the 'sip_header' source."
    )
    rtp: RtpMappingConfig = Field(
        default_factory=RtpMappingConfig, description="Settings of the 'rtp' source."
    )
    sms: SmsConfig = Field(default_factory=SmsConfig, description="Route of the poor-signal SMS.")

    @model_validator(mode="after")
    def _checks(self) -> TrunkConfig:
        if self.valid_dbm_min >= self.valid_dbm_max:
            raise FieldError(("valid_dbm_min",), "must be below valid_dbm_max")
        if len(set(self.sources)) != len(self.sources):
            raise FieldError(("sources",), "lists a source twice")
        if ("modem" in self.sources or self.sms.route == "modem") and self.modem is None:
            raise FieldError(("sources",), "source or SMS route 'modem' needs a modem section")
        return self
