"""Trunk speed table: AT round trip to the simulated modem, and the combiner's cost.

Run with `make bench` or `python -m tests.bench.bench_trunk`; prints a table.
"""

from __future__ import annotations

import asyncio
import time

from edgecall.config.trunk import ModemConfig, TrunkConfig
from edgecall.trunk.modem import Modem
from edgecall.trunk.quality import QualityCombiner
from edgecall.trunk.signal import SignalReading
from tests.harness.fake_modem import FakeModem, SignalState

ROUNDS = 200


async def _signal_reads(transport: str) -> float:
    with FakeModem(transport=transport, signal=SignalState.lte(-100)) as fake:
        where = {"device": fake.path} if transport == "pty" else {"tcp": f"127.0.0.1:{fake.port}"}
        modem = Modem(ModemConfig(**where))
        await modem.open()
        start = time.perf_counter()
        for _ in range(ROUNDS):
            assert (await modem.read_signal()).dbm == -100.0
        elapsed = time.perf_counter() - start
        modem.close()
    return elapsed / ROUNDS


async def bench() -> None:
    rows = [(f"read_signal over {t} (AT+CESQ)", await _signal_reads(t)) for t in ("pty", "tcp")]
    q = QualityCombiner(
        TrunkConfig(sources=["modem", "sip_header", "rtp"], modem=ModemConfig(device="/dev/null"))
    )
    start = time.perf_counter()
    for i in range(10_000):
        q.push_modem(SignalReading(-100.0 if i % 7 else None, reason="x"), i)
        q.push_rtp({"loss_pct": 1, "jitter_ms": 3}, i)
        q.sample(i + 0.5)
    rows.append(("combiner push+sample", (time.perf_counter() - start) / 10_000))
    print("\n| operation | mean |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e6:.0f} µs |")


if __name__ == "__main__":
    asyncio.run(bench())
