"""The SIP extension the appliance registers as, and how it takes and places calls."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from edgecall.capacity import CALLS_PER_CORE, analysed_calls, analysis_workers
from edgecall.config.base import ConfigModel, FieldError, SecretRef, whole_number_or_auto

Codec = Literal["G722", "PCMA", "PCMU"]

#: PJSUA_MAX_CALLS in third_party/pjproject/config_site.h, the compile-time call limit of
#: the pjsua2 binding third_party/build-pjsua2.sh builds (keep the two equal). At start
#: the telephony layer also reads the limit of the library actually linked and refuses a
#: max_concurrent_calls above it (telephony/engine.py).
PJSUA_MAX_CALLS_BUILT = 64


class SipTlsConfig(ConfigModel):
    ca_file: Path | None = Field(
        None,
        description="CA list (PEM) to verify the PBX certificate; needed with verify_server "
        "(pjsip has no default CA list).",
    )
    cert_file: Path | None = Field(
        None, description="Client certificate (PEM), if the PBX wants one."
    )
    key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    verify_server: bool = Field(True, description="Reject a PBX whose certificate does not verify.")


class NatConfig(ConfigModel):
    public_address: str | None = Field(
        None, description="Address to advertise in Contact/SDP when behind NAT."
    )
    stun_servers: list[str] = Field(
        default_factory=list, description="STUN servers 'host:port'; empty disables STUN."
    )


class AutoAnswerRule(ConfigModel):
    match_from: str = Field(".*", description="Regular expression on the caller's URI.")
    match_to: str = Field(".*", description="Regular expression on the called URI.")
    answer: bool = Field(True, description="Answer (true) or reject with 603 Decline (false).")
    delay_ms: int = Field(0, ge=0, le=30000, description="Ring this long before answering.")
    language: Literal["zh", "en"] | None = Field(
        None, description="Language of calls this rule answers; default appliance.default_language."
    )
    campaign: str | None = Field(None, description="Script campaign used for these calls.")


class SipConfig(ConfigModel):
    _auto_calls: bool = PrivateAttr(default=False)  # max_concurrent_calls was "auto"
    registrar: str = Field(..., description="Registrar URI, e.g. 'sip:pbx.branch.local'.")
    extension: str = Field(..., description="User part of our address of record, e.g. '7001'.")
    domain: str | None = Field(
        None, description="Domain of our address of record; default: registrar host."
    )
    auth_user: str | None = Field(None, description="Digest user name; default: the extension.")
    password: SecretRef = Field(..., description="Where the digest password comes from.")
    transport: Literal["udp", "tcp", "tls"] = Field("udp", description="Transport to the PBX.")
    local_port: int = Field(5060, ge=0, le=65535, description="Local SIP port; 0 picks a free one.")
    bind_address: str = Field("0.0.0.0", description="Local address to bind SIP and RTP to.")
    tls: SipTlsConfig | None = Field(None, description="TLS settings when transport is tls.")
    register_expiry_s: int = Field(
        300,
        ge=10,
        le=86400,
        description="Registration lifetime asked for; refreshed 5 s (or a third) before expiry.",
    )
    register_retry_s: int = Field(
        30,
        ge=2,
        le=3600,
        description="After a failed registration (registrar down, timeout), retry this often.",
    )
    nat: NatConfig = Field(default_factory=NatConfig, description="NAT traversal settings.")
    codecs: list[Codec] = Field(
        default_factory=lambda: ["G722", "PCMA", "PCMU"],
        min_length=1,
        description="Codecs in order of preference.",
    )
    rtp_port_min: int = Field(20000, ge=1024, le=65535, description="Lowest RTP port.")
    rtp_port_max: int = Field(20999, ge=1024, le=65535, description="Highest RTP port.")
    max_concurrent_calls: int | Literal["auto"] = Field(
        "auto",
        description="Beyond this many calls, inbound calls get 486 Busy Here and the dialer "
        "waits. 'auto': the calls this box can analyse (edgecall/capacity.py: per core, by "
        f"the campaigns' languages). At most {PJSUA_MAX_CALLS_BUILT}, the calls one process "
        "carries with the pjsua2 we build (PJSUA_MAX_CALLS); each call takes two ports of "
        "the RTP range.",
    )
    auto_answer: list[AutoAnswerRule] = Field(
        default_factory=lambda: [AutoAnswerRule()],
        description="Inbound rules, first match wins; no match means 603 Decline.",
    )
    ring_timeout_s: int = Field(
        30, ge=5, le=300, description="Outbound calls not answered within this are 'no answer'."
    )
    dial_prefix: str = Field(
        "", description="Prepended to outbound numbers (e.g. '9' for an outside line)."
    )
    jitter_buffer_ms: int = Field(
        160,
        ge=20,
        le=1000,
        description="Caller audio held back at least this long, so a late network or a busy "
        "CPU causes delay rather than gaps in what the models hear.",
    )
    audio_queue_frames: int = Field(
        250,
        ge=10,
        le=3000,
        description="Caller-audio frames (20 ms each) buffered per call before the oldest "
        "are dropped and counted.",
    )
    barge_in_level_dbfs: float = Field(
        -35.0,
        ge=-80,
        le=0,
        description="Caller audio louder than this (RMS per 20 ms frame) counts as speech "
        "for barge-in.",
    )
    barge_in_min_ms: int = Field(
        120,
        ge=20,
        le=2000,
        description="Speech this long stops a prompt played with barge-in (a quiet 20 ms "
        "frame takes one loud frame back, so a short gap does not start the count over).",
    )
    agent_target: str = Field(
        ..., description="Extension or queue that receives transfers to a human agent, e.g. '8000'."
    )

    @field_validator("max_concurrent_calls", mode="before")
    @classmethod
    def _call_limit(cls, value: object) -> object:
        return whole_number_or_auto(value, PJSUA_MAX_CALLS_BUILT, "calls")

    def check_port_range(self, calls: int, at: tuple[str, ...] = ()) -> None:
        pairs = (self.rtp_port_max - self.rtp_port_min + 1) // 2
        if pairs < calls:
            raise FieldError(
                (*at, "rtp_port_max"),
                f"rtp_port_min..rtp_port_max holds {pairs} RTP/RTCP port pairs, fewer than "
                f"max_concurrent_calls ({calls}): each call takes two ports",
            )

    @model_validator(mode="after")
    def _checks(self) -> SipConfig:
        if self.rtp_port_min > self.rtp_port_max:
            raise FieldError(("rtp_port_max",), "rtp_port_min must be <= rtp_port_max")
        if self.transport == "tls" and self.tls is None:
            raise FieldError(("transport",), "transport 'tls' needs a tls section")
        if self.transport == "tls" and self.tls and self.tls.verify_server and not self.tls.ca_file:
            # pjsip loads no default CA store: without a CA list every PBX certificate fails
            raise FieldError(
                ("tls", "verify_server"),
                "verify_server needs ca_file (the PBX's CA, or "
                "/etc/ssl/certs/ca-certificates.crt for a public CA): pjsip has no default CA list",
            )
        if len(set(self.codecs)) != len(self.codecs):
            raise FieldError(("codecs",), "lists a codec twice")
        if self.max_concurrent_calls != "auto":
            self.check_port_range(self.max_concurrent_calls)
            return self
        # Alone (no campaigns known) "auto" takes the costliest language; the whole config
        # (config/root.py) works it out again for its campaigns and workers.
        calls = analysed_calls(analysis_workers(), set(CALLS_PER_CORE), PJSUA_MAX_CALLS_BUILT)
        self.check_port_range(calls)
        self.resolve_call_limit(calls)
        return self

    def resolve_call_limit(self, calls: int) -> None:
        """Put the number "auto" stands for in place; only while the config is validated
        (the model is frozen for everyone else)."""
        object.__setattr__(self, "max_concurrent_calls", calls)
        self._auto_calls = True
