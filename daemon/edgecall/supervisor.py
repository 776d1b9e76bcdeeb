"""One asyncio task per long-running service, each restarted on failure with backoff.

A service is an async callable that runs until cancelled (MQTT link, SIP
registration, modem poller, inference worker...). When it raises, the failure is
logged, counted, and the service is started again after a capped, jittered
delay, so one broken component degrades the appliance instead of stopping it.
A service that returns normally has finished on purpose and is not restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("edgecall.supervisor")

# A run shorter than this counts as a failure streak; a longer one resets the backoff.
HEALTHY_AFTER_S = 30.0


def backoff_delay(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter in [delay/2, delay], capped at max_s."""
    delay = min(max_s, initial_s * 2 ** max(failures - 1, 0))
    return rng.uniform(delay / 2, delay)


@dataclass
class ServiceState:
    name: str
    running: bool = False
    restarts: int = 0
    failures_in_row: int = 0
    last_error: str | None = None
    finished: bool = False
    started_at: float = field(default=0.0, repr=False)


class Supervisor:
    def __init__(
        self, *, initial_s: float = 1.0, max_s: float = 60.0, rng: random.Random | None = None
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self._tasks: dict[str, asyncio.Task] = {}
        self.states: dict[str, ServiceState] = {}

    def start(self, name: str, service: Callable[[], Awaitable[None]]) -> None:
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"service {name!r} is already running")
        self.states[name] = ServiceState(name)
        self._tasks[name] = asyncio.create_task(self._keep(name, service), name=f"service:{name}")

    async def _keep(self, name: str, service: Callable[[], Awaitable[None]]) -> None:
        state = self.states[name]
        while True:
            state.running, state.started_at = True, time.monotonic()
            try:
                await service()
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a service is survivable
                state.running = False
                state.last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - state.started_at >= HEALTHY_AFTER_S:
                    state.failures_in_row = 0
                state.failures_in_row += 1
                state.restarts += 1
                delay = backoff_delay(
                    state.failures_in_row, self._initial_s, self._max_s, self._rng
                )
                log.error(
                    "service %s failed (%s); restart %d in %.1f s",
                    name,
                    state.last_error,
                    state.restarts,
                    delay,
                    exc_info=exc,
                )
                await asyncio.sleep(delay)
            else:
                state.running, state.finished = False, True
                log.info("service %s finished", name)
                return

    async def join(self, name: str, timeout: float) -> bool:
        """Wait for a service asked to stop to return by itself; True if it did in time."""
        task = self._tasks.get(name)
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    async def stop(self, name: str | None = None) -> None:
        """Cancel one service, or all of them, and wait until they have ended."""
        names = [name] if name else list(self._tasks)
        tasks = [self._tasks.pop(n) for n in names if n in self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def healthy(self) -> bool:
        """Every service that has not finished on purpose is running right now."""
        return all(s.running or s.finished for s in self.states.values())
