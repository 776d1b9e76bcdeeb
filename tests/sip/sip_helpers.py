"""Shared helpers of the SIP tests (importable as tests.sip.sip_helpers)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Callable
from typing import Any

from edgecall.telephony.service import Telephony
from tests.sip.audio_match import frames_to_signal, matches, read_wav, window_correlations

APPLIANCE_EXT = "1001"

_RTP_FIRST, _RTP_BLOCK, _RTP_BLOCKS = 20000, 200, 63  # 20000-32599
_next_rtp_block = itertools.count(random.randrange(_RTP_BLOCKS))


def rtp_base() -> int:
    """A fresh 200-port RTP block for one SIP user agent of a test.

    Blocks sit below the kernel's ephemeral ports (32768 and up), so no port a test
    binds as 0 (Kamailio, mosquitto, SIP transports) can fall inside one, and they
    rotate within the test process, so two agents of one test never share a block.
    """
    return _RTP_FIRST + (next(_next_rtp_block) % _RTP_BLOCKS) * _RTP_BLOCK


class Events:
    """Collects a Telephony's events in the background; tests wait for the ones they need."""

    def __init__(self, tel: Telephony) -> None:
        self.tel = tel
        self.all: list[Any] = []
        self._cursor_new = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while True:
            ev = await self.tel.events.get()
            self.all.append(ev)
            self._cursor_new.set()

    async def wait(
        self,
        kind: type,
        timeout: float = 10.0,
        where: Callable[[Any], bool] | None = None,
        after: int = 0,
    ) -> Any:
        """First event of `kind` (matching `where`) at index >= after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for ev in self.all[after:]:
                if isinstance(ev, kind) and (where is None or where(ev)):
                    return ev
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no {kind.__name__} in {timeout}s; saw "
                    f"{[type(e).__name__ for e in self.all][-15:]}"
                )
            self._cursor_new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cursor_new.wait(), remaining)

    def of(self, kind: type, call_id: str | None = None) -> list[Any]:
        return [
            e
            for e in self.all
            if isinstance(e, kind) and (call_id is None or getattr(e, "call_id", None) == call_id)
        ]

    def mark(self) -> int:
        return len(self.all)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def drain(queue: asyncio.Queue) -> list[bytes]:
    """All frames of a call's audio queue up to its end marker."""
    frames: list[bytes] = []
    while True:
        item = await asyncio.wait_for(queue.get(), 10)
        if item is None:
            return frames
        frames.append(item)


async def assert_each_call_heard(
    tel: Telephony, calls: list[str], drains: list[asyncio.Task], wav: Any
) -> None:
    """Every call's caller audio (its drained frames) is `wav` intact, none dropped."""
    reference = read_wav(wav)
    for call_id, task in zip(calls, drains, strict=True):
        frames = await task
        scores = window_correlations(reference, frames_to_signal(frames))
        assert matches(scores), (call_id, [round(s, 2) for s in scores])
        assert tel.frame_counts(call_id)[1] == 0
