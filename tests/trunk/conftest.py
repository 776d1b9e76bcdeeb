"""Fixtures of the trunk tests: a simulated modem on a pty (or TCP) and its client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edgecall.config.trunk import ModemConfig
from edgecall.trunk.modem import Modem
from tests.harness.fake_modem import FakeModem


@pytest.fixture
def fake_modem() -> Iterator[FakeModem]:
    with FakeModem() as fake:
        yield fake


@pytest.fixture
async def modem(fake_modem: FakeModem) -> AsyncIterator[Modem]:
    m = Modem(ModemConfig(device=Path(fake_modem.path), command_timeout_s=2.0))
    await m.open()
    yield m
    m.close()
