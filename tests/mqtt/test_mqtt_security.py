"""Broker authentication and TLS: success paths and clearly reported failures."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mqtt_helpers import IDENTITY, PREFIX, collecting, config, running_link, wait_until

from edgecall.messages import OUTCOME_SCHEMA, envelope
from tests.harness.mosquitto import Mosquitto, TlsFiles, make_ca, make_cert

PASSWORD_ENV = "EDGECALL_TEST_MQTT_PASSWORD"


def outcome() -> dict:
    return envelope(IDENTITY, OUTCOME_SCHEMA, {"result": "completed"}, call_id="c1")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "site-ca")
    return {
        "ca": ca,
        "server": make_cert(ca, d, "broker"),
        "client": make_cert(ca, d, "box-1", client=True),
        "other_ca": make_ca(d, "other-ca"),
    }


async def test_wrong_password_is_reported_then_right_one_works(
    mosquitto_factory,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    broker: Mosquitto = mosquitto_factory(users={"box-1": "s3cret-right", "hq": "hq-pw"}).start()
    caplog.set_level(logging.DEBUG, "edgecall")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-wrong")
    cfg = config(broker.port, username="box-1", password={"env": PASSWORD_ENV})
    async with running_link(cfg, state_dir) as link:
        await link.publish_outcome(outcome())
        await wait_until(lambda: link.state == "auth_failed", 10, "auth_failed state")
        stats = link.stats()
        assert "not authori" in stats["link"]["last_error"].lower()
        assert stats["outbox"]["depth"] == 1  # nothing lost while refused
    assert any("auth_failed" in r.getMessage() for r in caplog.records)
    assert not any("s3cret" in r.getMessage() for r in caplog.records)

    monkeypatch.setenv(PASSWORD_ENV, "s3cret-right")
    async with (
        collecting(broker, f"{PREFIX}/outcomes", username="hq", password="hq-pw") as col,
        running_link(cfg, state_dir) as link,
    ):
        await col.wait_for(lambda ms: len(ms) >= 1, 10)
        assert link.state == "connected"


async def test_missing_password_source_is_a_config_error(mosquitto: Mosquitto, state_dir: Path):
    cfg = config(mosquitto.port, username="box-1", password={"env": "EDGECALL_TEST_UNSET_VAR"})
    async with running_link(cfg, state_dir) as link:
        await wait_until(lambda: link.state == "config_error", 10, "config_error state")
        assert "EDGECALL_TEST_UNSET_VAR" in link.stats()["link"]["last_error"]


async def test_tls_with_generated_ca_and_mutual_auth(mosquitto_factory, pki, state_dir: Path):
    tls = TlsFiles(pki["ca"][0], *pki["server"], require_certificate=True)
    broker: Mosquitto = mosquitto_factory(tls=tls).start()
    cfg = config(
        broker.tls_port,
        tls={"ca_file": pki["ca"][0], "cert_file": pki["client"][0], "key_file": pki["client"][1]},
    )
    async with (
        collecting(broker, f"{PREFIX}/outcomes") as col,
        running_link(cfg, state_dir) as link,
    ):
        await link.publish_outcome(outcome())
        await col.wait_for(lambda ms: len(ms) >= 1, 10)
        assert link.state == "connected"


async def test_tls_ca_mismatch_fails_clearly(
    mosquitto_factory, pki, state_dir: Path, caplog: pytest.LogCaptureFixture
):
    broker: Mosquitto = mosquitto_factory(tls=TlsFiles(pki["ca"][0], *pki["server"])).start()
    caplog.set_level(logging.WARNING, "edgecall")
    cfg = config(broker.tls_port, tls={"ca_file": pki["other_ca"][0]})
    async with running_link(cfg, state_dir) as link:
        await link.publish_outcome(outcome())
        await wait_until(lambda: link.state == "tls_failed", 10, "tls_failed state")
        assert "certificate verify failed" in link.stats()["link"]["last_error"].lower()
        assert link.outbox.depth == 1
    assert any("tls_failed" in r.getMessage() for r in caplog.records)


async def test_tls_missing_ca_file_is_a_config_error(
    mosquitto_factory, pki, state_dir: Path, tmp_path: Path
):
    broker: Mosquitto = mosquitto_factory(tls=TlsFiles(pki["ca"][0], *pki["server"])).start()
    cfg = config(broker.tls_port, tls={"ca_file": tmp_path / "nope.crt"})
    async with running_link(cfg, state_dir) as link:
        await wait_until(lambda: link.state == "config_error", 10, "config_error state")
        assert "TLS files unusable" in link.stats()["link"]["last_error"]
