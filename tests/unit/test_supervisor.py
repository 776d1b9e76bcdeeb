"""Services are restarted with backoff after failures and stopped cleanly."""

from __future__ import annotations

import asyncio
import random

from edgecall.supervisor import Supervisor, backoff_delay


def test_backoff_doubles_with_jitter_and_is_capped():
    rng = random.Random(1)
    for failures, nominal in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 30), (50, 30)]:
        delay = backoff_delay(failures, 1.0, 30.0, rng)
        assert nominal / 2 <= delay <= nominal


async def test_failing_service_is_restarted_until_it_works():
    runs = []
    stop = asyncio.Event()

    async def flaky():
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"broken {len(runs)}")
        await stop.wait()

    sup = Supervisor(initial_s=0.01, max_s=0.02)
    sup.start("flaky", flaky)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(runs) == 3:
            break
    state = sup.states["flaky"]
    assert len(runs) == 3 and state.restarts == 2
    assert state.last_error == "RuntimeError: broken 2"
    assert state.running and sup.healthy()
    stop.set()
    await asyncio.sleep(0.05)
    assert state.finished and not state.running
    await sup.stop()


async def test_unhealthy_while_waiting_to_restart_and_stop_cancels():
    async def dies():
        raise OSError("no broker")

    sup = Supervisor(initial_s=10, max_s=10)
    sup.start("mqtt", dies)
    await asyncio.sleep(0.05)
    assert not sup.healthy()
    assert sup.states["mqtt"].restarts == 1
    await sup.stop()  # cancels the backoff sleep promptly
    assert not sup.states["mqtt"].running


async def test_join_waits_for_a_service_that_returns_by_itself():
    stop = asyncio.Event()

    async def polite():
        await stop.wait()
        await asyncio.sleep(0.05)  # e.g. publish a last status message

    sup = Supervisor()
    sup.start("link", polite)
    assert await sup.join("link", 0.05) is False
    stop.set()
    assert await sup.join("link", 2) is True
    assert sup.states["link"].finished
    await sup.stop()
