"""The whole appliance for real: `edgecall run` as a process, a Kamailio PBX, a
mosquitto broker, a PJSUA2 caller, the shipped models, and a NOTIFY_SOCKET the
test binds itself to watch what systemd would see."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kamailio import Kamailio
from tests.harness.lab import (
    AGENT,
    APPLIANCE,
    CALLER,
    PREFIX,
    USERS,
    DaemonProcess,
    HeadOffice,
    NotifySocket,
    render_prompts,
    write_appliance_config,
)
from tests.harness.mosquitto import Mosquitto
from tests.harness.sip_peer import SipPeer, sip_peers
from tests.sip.sip_helpers import rtp_base

__all__ = ["AGENT", "APPLIANCE", "CALLER", "PREFIX"]


@pytest.fixture(scope="session")
def prompt_wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The English campaign's prompts, recorded with espeak-ng (what the caller hears)."""
    return render_prompts(tmp_path_factory.mktemp("prompts"))


@pytest.fixture
def kamailio() -> Iterator[Kamailio]:
    k = Kamailio(dict(USERS))
    k.start()
    yield k
    k.cleanup()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "mosquitto") as m:
        yield m


@pytest.fixture
def appliance_config(
    tmp_path: Path, kamailio: Kamailio, broker: Mosquitto, prompt_wavs: dict[str, Path]
) -> Callable[..., Path]:
    """Writes a config.yaml for the daemon: the shipped one, pointed at the test peers, with
    espeak-ng recordings of the English prompts unless `recordings` says otherwise ({}: the
    shipped prompts as they are, synthesized by the on-device voices)."""

    def write(recordings: dict[str, Path] | None = None, **changes: Any) -> Path:
        return write_appliance_config(
            tmp_path,
            kamailio=kamailio,
            broker=broker,
            prompt_wavs=prompt_wavs if recordings is None else recordings,
            rtp_base=rtp_base(),
            **changes,
        )

    return write


@pytest.fixture
async def running(
    tmp_path: Path, appliance_config: Callable[..., Path], broker: Mosquitto
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: start the daemon (with config changes) and a head-office subscriber."""
    started: list[tuple[DaemonProcess, HeadOffice, NotifySocket]] = []

    async def start(**changes: Any) -> tuple[DaemonProcess, HeadOffice]:
        office = HeadOffice(broker.host, broker.port)
        await office.start()
        notify = NotifySocket(tmp_path / "notify.sock")
        daemon = DaemonProcess(appliance_config(**changes), notify, tmp_path / "daemon.log")
        started.append((daemon, office, notify))
        daemon.start()
        try:
            await daemon.ready()
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{daemon.log()}") from None
        await office.wait_for("status", lambda b: b.get("state") == "online", timeout=30)
        return daemon, office

    yield start
    for daemon, office, notify in started:
        daemon.stop(timeout=60)
        await office.close()
        notify.close()
        assert not daemon.ignored_sigterm, f"daemon ignored SIGTERM for 60 s:\n{daemon.log(80)}"


@pytest.fixture
def caller(kamailio: Kamailio, tmp_path: Path) -> Iterator[Callable[..., SipPeer]]:
    with sip_peers(kamailio, tmp_path) as start:
        yield lambda user=CALLER, **kw: start(user, **kw)
