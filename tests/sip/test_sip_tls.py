"""SIP over TLS with the pjsua2 we build (system OpenSSL 3): a call between the
appliance's Telephony and a second PJSUA2 process on 127.0.0.1, certificates made with
openssl. The test Kamailio has no TLS module, so the peer plays the PBX's TLS port."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from edgecall.config.base import SecretRef
from edgecall.config.sip import SipConfig, SipTlsConfig
from edgecall.telephony.events import CallStateChanged
from edgecall.telephony.service import Telephony
from tests.harness.mosquitto import make_ca, make_cert
from tests.harness.sip_peer import PeerProcess
from tests.sip.audio_match import frames_to_signal, matches, read_wav, window_correlations
from tests.sip.sip_helpers import Events, drain, rtp_base

PEER = Path(__file__).with_name("tls_peer.py")
TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}


class TlsPeer(PeerProcess):
    """tls_peer.py in its own process, driven like the harness's SIP peers."""

    def __init__(self, cert: Path, key: Path, log_path: Path, **opts: str) -> None:
        args = [sys.executable, str(PEER), "--cert", str(cert), "--key", str(key)]
        args += ["--rtp-port", str(rtp_base())]
        for name, value in opts.items():
            args += [f"--{name}", value]
        super().__init__(args, "tls-peer", log_path)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    ca = make_ca(tmp_path / "ca")
    server = make_cert(ca, tmp_path / "server", "pbx")
    rogue_ca = make_ca(tmp_path / "rogue", "rogue-ca")
    rogue = make_cert(rogue_ca, tmp_path / "rogue", "rogue-pbx")
    return {
        "ca": ca[0],
        "cert": server[0],
        "key": server[1],
        "rogue_cert": rogue[0],
        "rogue_key": rogue[1],
    }


@pytest.fixture
def tls_peer(tmp_path: Path):
    started: list[TlsPeer] = []

    async def start(cert: Path, key: Path, **opts: str) -> tuple[TlsPeer, int]:
        peer = TlsPeer(cert, key, tmp_path / f"tls-peer-{len(started)}.log", **opts)
        started.append(peer)
        ready = await peer.wait("ready")
        return peer, ready["port"]

    yield start
    for peer in started:
        peer.close()


def tls_config(tmp_path: Path, port: int, ca_file: Path) -> SipConfig:
    secret = tmp_path / "sip-password"
    secret.write_text("unused: the peer is no registrar")
    base = rtp_base()
    return SipConfig(
        registrar=f"sip:127.0.0.1:{port}",
        extension="1001",
        password=SecretRef(file=secret),
        transport="tls",
        tls=SipTlsConfig(ca_file=ca_file, verify_server=True),
        local_port=0,
        bind_address="127.0.0.1",
        register_retry_s=60,
        rtp_port_min=base,
        rtp_port_max=base + 199,
        agent_target="1003",
        codecs=["G722", "PCMU"],
    )


@pytest.fixture
async def telephony():
    started: list[tuple[Telephony, Events]] = []

    async def start(cfg: SipConfig) -> tuple[Telephony, Events]:
        tel = Telephony(cfg)
        await tel.start()
        started.append((tel, Events(tel)))
        return started[-1]

    yield start
    for tel, events in started:
        await tel.stop()
        await events.close()


@pytest.mark.slow
async def test_call_over_tls_with_a_verified_certificate_carries_audio_both_ways(
    certs, tls_peer, telephony, wavs, tmp_path
):
    heard = tmp_path / "heard-by-peer.wav"
    peer, port = await tls_peer(
        certs["cert"], certs["key"], play=str(wavs["speech"]), record=str(heard)
    )
    tel, events = await telephony(tls_config(tmp_path, port, certs["ca"]))
    call_id = await tel.originate(f"sip:pbx@127.0.0.1:{port};transport=tls")
    frames_task = asyncio.create_task(drain(tel.audio(call_id)))
    await peer.wait("incoming")
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "confirmed"
    )
    # OpenSSL 3 negotiates TLS 1.3 (the wheel's bundled OpenSSL 1.0.2k stopped at 1.2)
    tls = await peer.wait("tls")
    assert tls["cipher"] in TLS13_SUITES and tls["verify_status"] == 0, tls
    await peer.wait("media")
    assert await tel.play(call_id, wavs["prompt"]) == "completed"
    await asyncio.sleep(0.5)
    await tel.hangup(call_id, "end of test")
    ended = await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "disconnected"
    )
    assert ended.outcome == "completed"
    got = frames_to_signal(await frames_task)
    scores = window_correlations(read_wav(wavs["speech"]), got)
    assert matches(scores), ("peer->appliance", [round(s, 2) for s in scores])
    await peer.wait("recorded")
    heard_scores = window_correlations(read_wav(wavs["prompt"]), read_wav(heard))
    assert matches(heard_scores), ("appliance->peer", [round(s, 2) for s in heard_scores])


async def test_a_pbx_certificate_from_another_ca_is_refused(certs, tls_peer, telephony, tmp_path):
    peer, port = await tls_peer(certs["rogue_cert"], certs["rogue_key"])
    tel, events = await telephony(tls_config(tmp_path, port, certs["ca"]))
    call_id = await tel.originate(f"sip:pbx@127.0.0.1:{port};transport=tls")
    ended = await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "disconnected"
    )
    assert ended.outcome != "completed", ended
    with pytest.raises(TimeoutError):
        await peer.wait("incoming", timeout=1.0)


async def test_a_pbx_offering_only_tls_1_2_still_connects(certs, tls_peer, telephony, tmp_path):
    peer, port = await tls_peer(certs["cert"], certs["key"], tls="1.2")
    tel, events = await telephony(tls_config(tmp_path, port, certs["ca"]))
    call_id = await tel.originate(f"sip:pbx@127.0.0.1:{port};transport=tls")
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "confirmed"
    )
    tls = await peer.wait("tls")
    assert tls["cipher"] not in TLS13_SUITES and "GCM" in tls["cipher"], tls
    await tel.hangup(call_id, "end of test")
    await events.wait(
        CallStateChanged, where=lambda e: e.call_id == call_id and e.state == "disconnected"
    )
