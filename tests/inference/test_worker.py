"""InferenceClient against real worker processes running the test handlers."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgecall.inference.protocol import Priority
from edgecall.inference.worker import InferenceClient, WorkerSettings, restart_delay

ROOT = Path(__file__).resolve().parents[2]
GUARD_S = 30.0  # upper bound for anything awaited: a hang fails the test, not the suite


async def _until(predicate, timeout: float = GUARD_S) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_round_trip_matches_responses_to_requests(make_client):
    client = await make_client(config={"threshold": 0.7})
    results = await asyncio.gather(*(client.call("echo", "echo", {"value": i}) for i in range(25)))
    assert [r.status for r in results] == ["ok"] * 25
    assert {r.gap for r in results} == {None}
    assert [r.value for r in results] == list(range(25))
    assert len({r.id for r in results}) == 25

    assert (await client.call("echo", "config_value")).value == {"threshold": 0.7}
    pid = (await client.call("echo", "pid")).value
    assert pid != os.getpid()

    pcm = np.array([1, -2, 300, -32768, 32767], dtype=np.int16)
    for audio in (pcm, pcm.tobytes(), bytearray(pcm.tobytes())):
        res = await client.call("echo", "pcm", audio=audio)
        assert res.value == {"samples": 5, "dtype": "int16", "sum": int(pcm.sum())}

    stats = client.stats()
    json.dumps(stats)
    assert stats["ok"] == 25 + 2 + 3 and stats["restarts"] == 0 and stats["pending"] == 0
    assert stats["latency_ms"]["echo"]["n"] == 30
    assert set(client.model_latency_ms()["echo"]) >= {"p50", "p95"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process names are Linux's")
async def test_ps_shows_what_each_worker_serves(make_client):
    from tests.inference.conftest import REGISTRY

    client = await make_client()
    pid = (await client.call("echo", "pid")).value
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "+".join(sorted(REGISTRY))[:15]


async def test_handler_exception_fails_only_that_request(make_client):
    client = await make_client()
    pid = (await client.call("echo", "pid")).value
    res = await client.call("echo", "boom")
    assert res.status == "error" and res.reason == "RuntimeError: boom on purpose"
    assert res.gap == "error"
    res = await client.call("echo", "unpicklable")
    assert res.status == "error" and "cannot be sent back" in res.reason
    res = await client.call("echo", "worker_only")
    assert res.status == "error" and "cannot be read" in res.reason and res.model == "echo"
    for method in ("no_such_method", "_private", "load"):
        res = await client.call("echo", method)
        assert res.status == "error" and "no method" in res.reason
    assert (await client.call("echo", "pid")).value == pid
    assert client.stats()["restarts"] == 0


async def test_model_that_cannot_load_gives_errors_and_worker_lives(make_client):
    client = await make_client()
    pid = (await client.call("echo", "pid")).value
    for _ in range(2):  # the failure is remembered, not retried per request
        res = await client.call("broken", "run")
        assert res.status == "error" and "FileNotFoundError" in res.reason
    res = await client.call("not_importable", "run")
    assert res.status == "error" and "ModuleNotFoundError" in res.reason
    assert (await client.call("echo", "pid")).value == pid
    worker = client.stats()["workers"][0]
    assert set(worker["failed"]) == {"broken", "not_importable"} and "echo" in worker["loaded"]


async def test_bad_requests_get_clear_errors(make_client):
    client = await make_client(max_audio_bytes=1000)
    with pytest.raises(ValueError, match="unknown model"):
        await client.call("nope", "run")
    cases = {
        "not whole int16": b"\x00\x01\x02",
        "1-D int16": np.zeros(10, dtype=np.float32),
        "exceeds": b"\x00" * 1002,
    }
    for words, audio in cases.items():
        res = await client.call("echo", "pcm", audio=audio)
        assert res.status == "error" and words in res.reason
    res = await client.call("echo", "echo", {"value": lambda: 1})
    assert res.status == "error" and "cannot be sent" in res.reason
    res = await client.call("echo", "echo", {"value": _only_in_the_daemon()})
    assert res.status == "error" and "cannot be read" in res.reason and res.model == "echo"
    assert (await client.call("echo", "echo", {"value": "still fine"})).ok
    assert client.stats()["restarts"] == 0


def _only_in_the_daemon() -> object:
    """An object of a class the worker cannot import (its module exists only here)."""
    module = types.ModuleType("edgecall_runtime_only")
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules[module.__name__] = module
    return module.Thing()


@pytest.mark.slow
async def test_kill_9_resolves_pending_as_missing_then_restarts(make_client):
    client = await make_client(restart_min_s=1.5, restart_max_s=3.0)
    pid = (await client.call("echo", "pid")).value
    running = asyncio.create_task(client.call("echo", "sleep", {"seconds": 25}))
    second = asyncio.create_task(client.call("echo", "echo", {"value": 2}))
    await _until(lambda: client.stats()["in_flight"] == 2)
    os.kill(pid, signal.SIGKILL)

    for task in (running, second):
        res = await asyncio.wait_for(task, GUARD_S)
        assert res.status == "missing"
        assert res.gap == "crash" and "SIGKILL" in res.reason
    # While it waits out the back-off, requests answer at once instead of queueing.
    res = await client.call("echo", "echo", {"value": 3})
    assert res.status == "missing" and res.gap == "unavailable"
    assert "SIGKILL" in res.reason

    assert await client.wait_ready(GUARD_S)
    res = await client.call("echo", "pid")
    assert res.ok and res.value != pid and res.generation == 2
    stats = client.stats()
    assert stats["restarts"] == 1 and stats["missing_by_reason"]["crash"] == 2
    assert _gone(pid)


async def test_worker_exiting_inside_a_handler_is_a_crash(make_client):
    client = await make_client()
    res = await client.call("echo", "exit_now", {"code": 3})
    assert res.status == "missing" and "exited with code 3" in res.reason
    assert await client.wait_ready(GUARD_S)
    assert (await client.call("echo", "echo", {"value": "back"})).value == "back"


def test_restart_backoff_doubles_and_is_capped():
    assert [restart_delay(n, 0.5, 30.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(7, 0.5, 30.0) == 30.0
    assert restart_delay(10_000, 0.5, 30.0) == 30.0


def test_settings_take_the_restart_cap_from_the_models_config():
    from edgecall.config.models import ModelsConfig

    settings = WorkerSettings.from_models_config(ModelsConfig(worker_restart_max_s=0.3))
    assert settings.restart_max_s == 0.3 and settings.restart_min_s == 0.3


@pytest.mark.slow
async def test_hung_handler_times_out_then_worker_is_replaced(make_client):
    client = await make_client(hang_grace_s=1.0)
    pid = (await client.call("echo", "pid")).value
    res = await asyncio.wait_for(
        client.call("echo", "sleep", {"seconds": 120}, timeout=0.5), GUARD_S
    )
    assert res.status == "missing" and res.gap == "timeout"

    await _until(lambda: client.stats()["restarts"] == 1)
    assert "hung" in client.stats()["workers"][0]["last_exit"]
    assert await client.wait_ready(GUARD_S)
    res = await client.call("echo", "pid")
    assert res.ok and res.value != pid
    await _until(lambda: _gone(pid))


@pytest.mark.slow
async def test_slow_model_load_is_not_mistaken_for_a_hang(make_client):
    client = await make_client(hang_grace_s=1.0)  # the load takes 3 s: longer than 0.2 + 1.0
    res = await client.call("slow_load", "ready", timeout=0.2)
    assert res.status == "missing" and res.reason.startswith("timeout:")
    await _until(lambda: "slow_load" in client.stats()["workers"][0]["loaded"])
    assert (await client.call("slow_load", "ready")).value is True
    assert client.stats()["restarts"] == 0


async def test_overload_drops_oldest_low_priority_and_stays_bounded(make_client):
    client = await make_client(max_in_flight=1, queue_max=4)
    blocker = asyncio.create_task(client.call("echo", "sleep", {"seconds": 3.0}))
    await _until(lambda: client.stats()["in_flight"] == 1)

    def submit(value: int, priority: Priority) -> asyncio.Task:
        return asyncio.create_task(client.call("echo", "echo", {"value": value}, priority=priority))

    lows = [submit(i, Priority.LOW) for i in range(6)]
    await asyncio.sleep(0.05)
    highs = [submit(100 + i, Priority.HIGH) for i in range(4)]  # each evicts the oldest LOW
    await asyncio.sleep(0.05)
    late_low = submit(999, Priority.LOW)  # nothing lower to evict: it is the one dropped
    await asyncio.sleep(0.05)
    stats = client.stats()
    assert stats["queued"] == 4 and stats["dropped"] == {"low": 7}

    for task in [*lows, late_low]:
        res = await asyncio.wait_for(task, GUARD_S)
        assert res.status == "missing" and res.gap == "overloaded"
    assert [(await asyncio.wait_for(t, GUARD_S)).value for t in highs] == [100, 101, 102, 103]
    assert (await blocker).ok
    assert client.stats()["pending"] == 0


async def test_requests_waiting_past_their_deadline_resolve_as_missing(make_client):
    client = await make_client(max_in_flight=1)
    blocker = asyncio.create_task(client.call("echo", "sleep", {"seconds": 1.5}))
    await _until(lambda: client.stats()["in_flight"] == 1)
    res = await asyncio.wait_for(client.call("echo", "echo", timeout=0.3), GUARD_S)
    assert res.status == "missing" and "waiting for a worker" in res.reason
    assert (await blocker).ok
    assert client.stats()["pending"] == 0 and client.stats()["restarts"] == 0


@pytest.mark.slow
async def test_event_loop_keeps_ticking_during_worker_cpu_work(make_client):
    client = await make_client()
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    res = await client.call("echo", "spin", {"seconds": 2.0})
    stop.set()
    await task
    assert res.ok and res.compute_s >= 2.0
    # ~100 ticks if the loop is free; 0-1 if the work ran on the loop. 10 allows a loaded box.
    assert ticks >= 10


@pytest.mark.slow
async def test_a_stuck_worker_with_a_full_pipe_does_not_block_the_loop(make_client):
    client = await make_client(hang_grace_s=1.0)
    big = np.ones(1_000_000, dtype=np.int16)  # 2 MB: far more than the pipe buffers
    stuck = asyncio.create_task(client.call("echo", "sleep", {"seconds": 60}, timeout=1.0))
    await _until(lambda: client.stats()["in_flight"] == 1)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    res = await asyncio.wait_for(client.call("echo", "pcm", audio=big, timeout=1.0), GUARD_S)
    task.cancel()
    assert res.gap == "timeout" and (await stuck).gap == "timeout"
    assert ticks >= 5  # ~50 if the loop never waited on the pipe

    await _until(lambda: client.stats()["restarts"] == 1)
    assert await client.wait_ready(GUARD_S)
    res = await client.call("echo", "pcm", audio=big)
    assert res.ok and res.value["samples"] == 1_000_000 and res.value["sum"] == 1_000_000


async def test_calls_with_a_key_stay_on_one_worker(make_client):
    client = await make_client(workers=2)
    keys = ["call-a", "call-b", "call-c", "call-d"]
    assert {zlib.crc32(k.encode()) % 2 for k in keys} == {0, 1}
    pids: dict[str, set[int]] = {k: set() for k in keys}
    for _ in range(3):
        results = await asyncio.gather(*(client.call("echo", "pid", key=k) for k in keys))
        for k, r in zip(keys, results, strict=True):
            pids[k].add(r.value)
    assert all(len(p) == 1 for p in pids.values())
    assert len(set().union(*pids.values())) == 2


async def test_a_key_sent_before_its_worker_is_up_waits_for_it():
    """At start-up the second worker is often still loading when the first calls
    arrive; a call sent to the first one and then back home would lose its state."""
    from tests.inference.conftest import FAST, REGISTRY

    client = InferenceClient(WorkerSettings(**{**FAST, "workers": 2}), registry=REGISTRY)
    await client.start()  # not waiting for ready: requests queue
    try:
        keys = ["call-a", "call-b", "call-c", "call-d"]
        first = await asyncio.gather(*(client.call("echo", "pid", key=k) for k in keys))
        assert await client.wait_ready(60.0)
        again = await asyncio.gather(*(client.call("echo", "pid", key=k) for k in keys))
        assert [r.value for r in first] == [r.value for r in again]
    finally:
        await client.close()


@pytest.mark.slow
async def test_a_key_placed_while_its_home_restarts_stays_where_it_was_placed(make_client):
    client = await make_client(workers=2, restart_min_s=1.5, restart_max_s=3.0)
    homes = {k: zlib.crc32(k.encode()) % 2 for k in ("call-a", "call-b", "call-c", "call-d")}
    key = next(k for k, home in homes.items() if home == 1)
    home_pid = client.stats()["workers"][1]["pid"]
    os.kill(home_pid, signal.SIGKILL)
    await _until(lambda: client.stats()["workers"][1]["state"] != "ready")
    other_pid = client.stats()["workers"][0]["pid"]
    assert (await client.call("echo", "pid", key=key)).value == other_pid
    assert await client.wait_ready(GUARD_S)  # its home is back ...
    assert (await client.call("echo", "pid", key=key)).value == other_pid  # ... it stays
    await client.call("echo", "echo", key=key, last_for_key=True)  # the call's end
    new_home = client.stats()["workers"][1]["pid"]
    assert (await client.call("echo", "pid", key=key)).value == new_home  # a new call


async def test_close_answers_pending_and_leaves_no_child_process():
    from tests.inference.conftest import FAST, REGISTRY

    client = InferenceClient(WorkerSettings(**{**FAST, "workers": 2}), registry=REGISTRY)
    await client.start()
    assert await client.wait_ready(60.0)
    pids = [w["pid"] for w in client.stats()["workers"]]
    pending = asyncio.create_task(client.call("echo", "sleep", {"seconds": 30}))
    await _until(lambda: client.stats()["in_flight"] == 1)

    await asyncio.wait_for(client.close(timeout=3.0), GUARD_S)
    res = await pending
    assert res.status == "missing" and res.gap == "shutdown"
    assert not {c.pid for c in multiprocessing.active_children()} & set(pids)
    assert all(_gone(pid) for pid in pids)
    res = await client.call("echo", "echo")
    assert res.status == "missing" and res.reason.startswith("shutdown:")


async def test_workers_die_with_a_killed_daemon(tmp_path):
    """kill -9 of the daemon must not leave a busy worker holding models and memory."""
    script, marker = tmp_path / "daemon.py", tmp_path / "worker-busy"
    script.write_text(
        "import asyncio, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from edgecall.inference.worker import InferenceClient, WorkerSettings\n"
        "from tests.inference.conftest import REGISTRY\n"
        "async def main():\n"
        "    client = InferenceClient(WorkerSettings(nice=0), registry=REGISTRY)\n"
        "    await client.start()\n"
        "    res = await client.call('echo', 'pid', timeout=60)\n"
        "    print(res.value if res.ok else res, flush=True)\n"
        f"    params = {{'seconds': 120, 'marker': {str(marker)!r}}}\n"
        "    await client.call('echo', 'sleep', params, timeout=200)\n"
        "if __name__ == '__main__':  # spawn imports the main module in the worker\n"
        "    asyncio.run(main())\n"
    )
    # A plain Popen: asyncio's wait() would also wait for the stdout pipe, which an
    # orphaned worker keeps open.
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    worker_pid = None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(daemon.stdout.readline), 60)
        assert line.strip().isdigit(), line
        worker_pid = int(line)
        await _until(marker.exists)
        daemon.kill()
        await _until(lambda: _gone(worker_pid) or _zombie(worker_pid))
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()
        if worker_pid is not None and not (_gone(worker_pid) or _zombie(worker_pid)):
            os.kill(worker_pid, signal.SIGKILL)  # the test failed: do not leave it behind


def _zombie(pid: int) -> bool:
    """An orphan reparented to a non-reaping init stays a zombie: dead all the same."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
