"""Fixtures of the inference worker tests: a client wired to the test handlers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the spawned worker imports tests.inference.echo_handler
    sys.path.insert(0, str(ROOT))

from edgecall.inference.worker import InferenceClient, WorkerSettings  # noqa: E402

REGISTRY = {
    "echo": "tests.inference.echo_handler:EchoHandler",
    "broken": "tests.inference.echo_handler:BrokenLoadHandler",
    "slow_load": "tests.inference.echo_handler:SlowLoadHandler",
    "not_importable": "tests.inference.no_such_module:Handler",
}

# Generous: the machine is shared and loaded; behaviour, not speed, is under test.
FAST = {
    "restart_min_s": 0.2,
    "restart_max_s": 1.0,
    "hang_grace_s": 1.0,
    "default_timeout_s": 20.0,
    "nice": 0,
}


@pytest.fixture
async def make_client() -> AsyncIterator:
    """Factory of started clients; every one is closed (and its workers reaped) after."""
    clients: list[InferenceClient] = []

    async def make(
        config: object = None, registry: Mapping[str, str] = REGISTRY, **settings: object
    ) -> InferenceClient:
        client = InferenceClient(
            WorkerSettings(**{**FAST, **settings}), registry=registry, config=config
        )
        await client.start()
        clients.append(client)
        assert await client.wait_ready(60.0), client.stats()
        return client

    yield make
    for client in clients:
        await client.close()
