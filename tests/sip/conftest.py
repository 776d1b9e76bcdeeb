"""Fixtures for SIP tests: a real Kamailio, speech WAVs, the appliance, SIP peers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecall.config.base import SecretRef
from edgecall.config.sip import SipConfig
from edgecall.telephony.service import Telephony
from tests.harness.audio import make_wav
from tests.harness.kamailio import Kamailio
from tests.harness.sip_peer import SipPeer, sip_peers
from tests.sip.sip_helpers import APPLIANCE_EXT, Events, rtp_base


@pytest.fixture(scope="session")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("wavs")
    return {
        "speech": make_wav(
            d / "speech.wav",
            "Hello, I am calling about my order. It has "
            "not arrived yet and I would like to know where it is.",
        ),
        "prompt": make_wav(
            d / "prompt.wav",
            "Thank you for calling. Please hold while "
            "we connect you to the next available agent. Your call matters.",
        ),
        "short": make_wav(d / "short.wav", "Yes, please."),
    }


@pytest.fixture
def kamailio() -> Iterator[Kamailio]:
    k = Kamailio()
    k.start()
    yield k
    k.cleanup()


@pytest.fixture
def sip_config(kamailio: Kamailio, tmp_path: Path) -> Callable[..., SipConfig]:
    def make(password: str | None = None, **over: Any) -> SipConfig:
        secret = tmp_path / f"sip-password-{random.randrange(1 << 30)}"
        secret.write_text(password if password is not None else kamailio.users[APPLIANCE_EXT])
        base = rtp_base()
        fields: dict[str, Any] = {
            "registrar": kamailio.uri,
            "extension": APPLIANCE_EXT,
            "password": SecretRef(file=secret),
            "local_port": 0,
            "bind_address": "127.0.0.1",
            "register_expiry_s": 60,
            "register_retry_s": 2,
            "rtp_port_min": base,
            "rtp_port_max": base + 199,
            "agent_target": "1003",
            "codecs": ["G722", "PCMU"],
        }
        fields.update(over)
        return SipConfig(**fields)

    return make


@pytest.fixture
async def appliance(sip_config: Callable[..., SipConfig]) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start a Telephony (one at a time per process) and its event collector."""
    started: list[tuple[Telephony, Events]] = []

    async def start(cfg: SipConfig | None = None, **kw: Any) -> tuple[Telephony, Events]:
        tel = Telephony(cfg or sip_config(), **kw)
        await tel.start()
        ev = Events(tel)
        started.append((tel, ev))
        return tel, ev

    yield start
    for tel, ev in started:
        await tel.stop()
        await ev.close()


@pytest.fixture
def peers(kamailio: Kamailio, tmp_path: Path) -> Iterator[Callable[..., SipPeer]]:
    with sip_peers(kamailio, tmp_path) as start:
        yield start
