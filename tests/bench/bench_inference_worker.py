"""Benchmark: what the inference worker process costs on top of the model itself.

Run: .venv/bin/python tests/bench/bench_inference_worker.py [--rounds 300]
Prints one table: round trip p50/p95 of a no-op request and of 1 s / 20 s of
16 kHz int16 audio (pipe transfer, no shared memory), worker start and restart
times, event-loop lag while the worker burns CPU, and CPU-bound throughput with
1 and 2 workers. Figures depend on the machine's load at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the spawned workers inherit this and import the test handlers

from edgecall.inference.worker import InferenceClient, WorkerSettings  # noqa: E402
from tests.bench.percentiles import pct  # noqa: E402

REGISTRY = {"echo": "tests.inference.echo_handler:EchoHandler"}
RATE = 16000


async def _round_trips(client: InferenceClient, rounds: int, **call) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        res = await client.call("echo", **call)
        out.append(time.perf_counter() - start)
        assert res.ok, res
    return out


async def _loop_lag_during_spin(
    client: InferenceClient | None, seconds: float
) -> tuple[float, int]:
    """Worst lateness of a 10 ms ticker while the worker spins for `seconds`.

    client None: the same work on a thread of this process instead, for contrast.
    """
    worst, ticks, stop = 0.0, 0, asyncio.Event()

    async def ticker() -> None:
        nonlocal worst, ticks
        while not stop.is_set():
            due = time.perf_counter() + 0.01
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - due)
            ticks += 1

    task = asyncio.create_task(ticker())
    if client is None:
        from tests.inference.echo_handler import EchoHandler

        await asyncio.to_thread(EchoHandler().spin, seconds)
    else:
        await client.call("echo", "spin", {"seconds": seconds})
    stop.set()
    await task
    return worst, ticks


async def _throughput(workers: int, jobs: int, job_s: float) -> float:
    settings = WorkerSettings(workers=workers, nice=0, max_in_flight=1)
    async with InferenceClient(settings, registry=REGISTRY) as client:
        await client.wait_ready()
        await asyncio.gather(*(client.call("echo", "pid") for _ in range(workers * 4)))
        start = time.perf_counter()
        results = await asyncio.gather(
            *(client.call("echo", "spin", {"seconds": job_s}, timeout=120) for _ in range(jobs))
        )
        assert all(r.ok for r in results)
        return jobs / (time.perf_counter() - start)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _scene_worker_rss() -> float:
    from edgecall.config.models import ModelsConfig

    config = ModelsConfig(dir=ROOT / "models" / "scene", scene=Path("scene_int8.onnx"))
    settings = WorkerSettings(nice=0, preload=("scene",))
    async with InferenceClient(settings, config=config) as client:
        await client.wait_ready()
        res = await client.call("scene", "classify", {"trace_dbm": [-80.0] * 120})
        assert res.ok, res
        return _rss_mb(client.stats()["workers"][0]["pid"])


async def main(rounds: int) -> None:
    rows: list[tuple[str, str, str]] = []
    import numpy as np

    rng = np.random.default_rng(0)
    one_s = rng.integers(-3000, 3000, RATE, dtype=np.int16).tobytes()
    twenty_s = rng.integers(-3000, 3000, RATE * 20, dtype=np.int16).tobytes()

    start = time.perf_counter()
    client = InferenceClient(WorkerSettings(nice=0), registry=REGISTRY)
    await client.start()
    await client.wait_ready()
    rows.append(("worker spawn to ready (ms)", f"{(time.perf_counter() - start) * 1000:.0f}", ""))
    try:
        await _round_trips(client, 20, method="echo")  # warm up: handler import and load
        for label, call, n in (
            ("no-op request", {"method": "echo"}, rounds),
            ("1 s of 16 kHz audio (32 kB)", {"method": "pcm", "audio": one_s}, rounds),
            ("20 s of 16 kHz audio (640 kB)", {"method": "pcm", "audio": twenty_s}, rounds // 3),
        ):
            samples = await _round_trips(client, n, **call)
            rows.append(
                (
                    f"round trip, {label} (ms)",
                    f"{pct(samples, 0.5) * 1000:.3f}",
                    f"{pct(samples, 0.95) * 1000:.3f}",
                )
            )

        pid = (await client.call("echo", "pid")).value
        rows.append(("worker RSS, test handler only (MB)", f"{_rss_mb(pid):.1f}", ""))
        lag, ticks = await _loop_lag_during_spin(client, 2.0)
        rows.append(("max loop lag, 10 ms ticker, worker 2 s CPU (ms)", f"{lag * 1000:.1f}", ""))
        rows.append(("  ticks during those 2 s (ideal ~200)", str(ticks), ""))
        lag, ticks = await _loop_lag_during_spin(None, 2.0)
        rows.append(("same CPU work on a daemon thread: max lag (ms)", f"{lag * 1000:.1f}", ""))
        rows.append(("  ticks during those 2 s (ideal ~200)", str(ticks), ""))

        pid = (await client.call("echo", "pid")).value
        start = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while not (await client.call("echo", "pid", timeout=2.0)).ok:
            await asyncio.sleep(0.01)
        rows.append(
            (
                "kill -9 to first ok answer, back-off 0.5 s (ms)",
                f"{(time.perf_counter() - start) * 1000:.0f}",
                "",
            )
        )
    finally:
        await client.close()

    rows.append(("worker RSS, scene CNN loaded (MB)", f"{await _scene_worker_rss():.1f}", ""))
    for workers in (1, 2):
        rate = await _throughput(workers, jobs=16, job_s=0.1)
        rows.append((f"CPU-bound 100 ms jobs/s, {workers} worker(s)", f"{rate:.2f}", ""))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'p50 or value':>14}  {'p95':>8}")
    print("-" * (width + 26))
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>8}")
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    asyncio.run(main(parser.parse_args().rounds))
