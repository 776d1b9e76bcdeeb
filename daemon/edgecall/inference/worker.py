"""Model inference outside the daemon process, behind an asyncio client.

The daemon carries SIP media on PJSUA2 threads; a model running in the same
process would hold the GIL and garble audio. `InferenceClient` therefore runs the
models in worker processes (`worker_process.run`, started with 'spawn': a fork
would copy PJSUA2's threads in an undefined state) and gives the call sessions an
awaitable that always returns a `Result`, never blocks the event loop and never
raises for a model's failure:

- each request carries an id and a deadline; past the deadline it resolves as
  "missing" (the worker skips it if it has not started it yet);
- a crashed worker (any exit) resolves its in-flight requests as "missing" with
  the reason and is restarted with doubling back-off capped at
  `models.worker_restart_max_s`; a worker silent for `hang_grace_s` after an
  in-flight deadline is killed and restarted the same way;
- a handler that raises gives an "error" result for that request only;
- the wait queue is bounded: on overflow the oldest request of the lowest
  priority (not above the newcomer's) is dropped and counted, so memory stays
  bounded however slow the models get;
- pipe writes happen on a sender thread and reads on a reader thread per worker,
  so neither a full pipe nor a half-written message can stall the loop.

`stats()` feeds the daemon's `<prefix>/stats` message. Use:

    settings = WorkerSettings.from_models_config(cfg.models, preload=("scene",))
    client = InferenceClient(settings, config=cfg.models)
    await client.start()
    res = await client.call("scene", "classify", {"trace_dbm": trace}, timeout=1.0)
    guess = res.value if res.ok else None  # else the event lists {"scene": res.gap}
    await client.close()

The daemon's main module must be import-safe (`if __name__ == "__main__":`):
'spawn' imports it again in each worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from edgecall.inference import worker_process
from edgecall.inference.protocol import (
    STOP,
    Priority,
    Request,
    Result,
    WorkerEvent,
    decode,
    encode,
)

log = logging.getLogger("edgecall.inference")

# Model names and the handler classes the daemon ships; tests and later runtimes add
# their own by passing `registry=`.
DEFAULT_REGISTRY: Mapping[str, str] = {
    "scene": "edgecall.inference.handlers:SceneHandler",
    "analysis": "edgecall.inference.handlers:CallAnalysisHandler",
}


@dataclass(frozen=True)
class WorkerSettings:
    """How many workers, how patient, how much may wait. Defaults suit a 2-core box."""

    workers: int = 1
    queue_max: int = 64  # requests waiting in the daemon for a free worker
    max_in_flight: int = 2  # requests handed to one worker (one running, one ready)
    default_timeout_s: float = 5.0
    hang_grace_s: float = 5.0  # silence after an in-flight deadline before the kill
    start_timeout_s: float = 60.0  # spawn to 'ready'
    load_timeout_s: float = 120.0  # one model load
    restart_min_s: float = 0.5
    restart_max_s: float = 30.0
    stable_after_s: float = 60.0  # a worker up this long resets the back-off
    max_audio_bytes: int = 8 * 1024 * 1024  # 4 min of 16 kHz int16
    nice: int = 5  # worker runs below the daemon so media threads win the CPU
    latency_window: int = 512  # recent samples kept per model for p50/p95
    preload: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.workers < 1 or self.queue_max < 1 or self.max_in_flight < 1:
            raise ValueError("workers, queue_max and max_in_flight must be at least 1")
        if not 0 < self.restart_min_s <= self.restart_max_s:
            raise ValueError("need 0 < restart_min_s <= restart_max_s")

    @classmethod
    def from_models_config(cls, models: Any, **overrides: Any) -> WorkerSettings:
        """Settings from the `models:` config section (`ModelsConfig`)."""
        values: dict[str, Any] = {
            "workers": models.workers,
            "queue_max": models.worker_queue_max,
            "hang_grace_s": models.worker_hang_grace_s,
            "nice": models.worker_nice,
            "restart_max_s": models.worker_restart_max_s,
        }
        values["restart_min_s"] = min(cls.restart_min_s, models.worker_restart_max_s)
        values.update(overrides)
        return cls(**values)


@dataclass(eq=False)
class _Pending:
    req: Request
    payload: bytes
    priority: Priority
    key: str | None
    future: asyncio.Future[Result]
    submitted: float
    last_for_key: bool = False
    timer: asyncio.TimerHandle | None = None
    slot: _Slot | None = None


@dataclass(eq=False)
class _Slot:
    """One worker process position; the process in it changes on every restart."""

    index: int
    generation: int = 0
    state: str = "stopped"  # starting, ready, backoff, stopped
    process: Any = None
    send_q: queue.SimpleQueue[bytes | None] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    in_flight: dict[int, _Pending] = field(default_factory=dict)
    started_at: float = 0.0
    last_heard: float = 0.0
    loading: str | None = None
    loading_since: float = 0.0
    loaded: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    kill_reason: str | None = None
    last_exit: str | None = None
    crashes: int = 0  # consecutive, for the back-off
    restart_at: float | None = None
    restart_handle: asyncio.TimerHandle | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)


class InferenceClient:
    """The daemon's handle on the inference workers; use from one event loop.

    `config` is handed to every handler's `load(config)` (the daemon passes its
    `ModelsConfig`); it and every request's params must be picklable.
    """

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        registry: Mapping[str, str] = DEFAULT_REGISTRY,
        config: Any = None,
    ) -> None:
        self.settings = settings or WorkerSettings()
        unknown = set(self.settings.preload) - set(registry)
        if unknown:
            raise ValueError(f"preload names models not in the registry: {sorted(unknown)}")
        try:
            ForkingPickler.dumps((dict(registry), config))
        except Exception as exc:  # the worker could never start: say so now, not per restart
            raise ValueError(f"inference config must be picklable: {exc}") from None
        self._registry = dict(registry)
        self._config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(self.settings.workers)]
        self._queues: dict[Priority, deque[_Pending]] = {p: deque() for p in Priority}
        # key -> the worker process (slot and its generation) that holds the key's state
        self._placed: dict[str, tuple[_Slot, int]] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._spawning: set[asyncio.Task[None]] = set()
        # Workers are started from this one thread, alive as long as the client: Linux's
        # parent-death signal (see worker_process) fires when the *thread* that
        # started a child exits, so a pool thread that retires would kill a worker.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="inference-spawn")
        self._closing = False
        self._counts: Counter[str] = Counter()
        self._missing: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._restarts = 0
        self._latency: dict[str, deque[float]] = {}
        self._compute: dict[str, deque[float]] = {}

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the workers; requests may be submitted at once (they queue until ready)."""
        if self._loop is not None:
            raise RuntimeError("InferenceClient already started")
        self._loop = asyncio.get_running_loop()
        await asyncio.gather(*(self._spawn(slot) for slot in self._slots))
        self._supervisor = self._loop.create_task(self._supervise(), name="inference-supervisor")

    async def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once every worker has said 'ready' (and finished its preloads)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self._ready(s) for s in self._slots):
                return True
            await asyncio.sleep(0.05)
        return False

    def _ready(self, slot: _Slot) -> bool:
        done = slot.loaded.keys() | slot.failed.keys()
        return slot.state == "ready" and slot.loading is None and done >= set(self.settings.preload)

    async def close(self, timeout: float = 5.0) -> None:
        """Answer everything still waiting as missing, stop the workers, reap them."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._spawning):
            with contextlib.suppress(Exception):
                await task
        for q in self._queues.values():
            while q:
                self._missing_result(q.popleft(), "shutdown", "inference is shutting down")
        for slot in self._slots:
            if slot.restart_handle is not None:
                slot.restart_handle.cancel()
            for p in list(slot.in_flight.values()):
                self._missing_result(p, "shutdown", "inference is shutting down")
            if slot.send_q is not None and slot.state in ("starting", "ready"):
                slot.send_q.put(None)  # the worker returns when it reads this
        running = [s for s in self._slots if s.process is not None and not s.exited.is_set()]
        await asyncio.gather(*(self._stop(slot, timeout) for slot in running))
        threads = [t for s in self._slots for t in s.threads]
        await asyncio.to_thread(_join_all, threads, timeout)
        self._spawner.shutdown(wait=False)

    async def _stop(self, slot: _Slot, timeout: float) -> None:
        try:
            await asyncio.wait_for(slot.exited.wait(), timeout)
        except TimeoutError:  # busy in a handler or hung: it cannot read the stop request
            slot.kill_reason = "did not stop in time"
            slot.process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.exited.wait(), 5.0)

    async def __aenter__(self) -> InferenceClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------------

    async def call(
        self,
        model: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        audio: bytes | bytearray | memoryview | Any = None,
        timeout: float | None = None,
        priority: Priority = Priority.NORMAL,
        key: str | None = None,
        last_for_key: bool = False,
    ) -> Result:
        """Run `model.method(**params, audio=<int16 array>)` in a worker.

        `audio`: mono 16-bit PCM as bytes or a numpy int16 array. `key` (e.g. the
        call id) keeps a call's requests on one worker, for handlers with per-call
        state; `last_for_key` marks the key's last request (the call's close), after
        which the client forgets where the key lived. Returns a Result; raises only
        ValueError for an unknown model name.
        """
        if model not in self._registry:
            raise ValueError(f"unknown model {model!r}; known: {sorted(self._registry)}")
        loop = self._loop
        if loop is None:
            raise RuntimeError("InferenceClient.start() has not been awaited")
        req_id = next(self._ids)
        self._counts["submitted"] += 1
        if self._closing:
            return self._count_missing(req_id, model, "shutdown", "inference is shut down")
        pcm, problem = _pcm_bytes(audio, self.settings.max_audio_bytes)
        timeout = self.settings.default_timeout_s if timeout is None else timeout
        req = Request(req_id, model, method, time.monotonic() + timeout, dict(params or {}), pcm)
        if problem is None:
            try:
                payload = encode(req.id, req)
            except Exception as exc:  # unpicklable params: the caller's bug, this request's error
                problem = f"request cannot be sent: {type(exc).__name__}: {exc}"
        if problem is not None:
            self._counts["error"] += 1
            return Result(req_id, model, "error", reason=problem)
        if not any(s.state in ("starting", "ready") for s in self._slots):
            return self._count_missing(req_id, model, "unavailable", self._down_reason())
        p = _Pending(req, payload, Priority(priority), key, loop.create_future(), 0.0, last_for_key)
        p.submitted = time.monotonic()
        self._enqueue(p)
        if not p.future.done():
            p.timer = loop.call_at(req.deadline, self._on_deadline, p)
            p.future.add_done_callback(lambda f, p=p: self._on_done(p, f))
            self._dispatch()
        return await p.future

    def _enqueue(self, p: _Pending) -> None:
        total = sum(len(q) for q in self._queues.values())
        if total >= self.settings.queue_max:
            victim = p
            for prio in Priority:  # lowest first
                if prio > p.priority:
                    break
                if self._queues[prio]:
                    victim = self._queues[prio].popleft()
                    break
            self._dropped[victim.priority.name.lower()] += 1
            self._missing_result(victim, "overloaded", "dropped: the inference queue is full")
            if victim is p:
                return
        self._queues[p.priority].append(p)

    def _dispatch(self) -> None:
        """Hand queued requests, highest priority first, to workers with room."""
        for prio in sorted(Priority, reverse=True):
            q = self._queues[prio]
            for p in list(q):
                free = [s for s in self._slots if self._has_room(s)]
                if not free:
                    return
                slot = self._worker_for(p, free)
                if slot is None:
                    continue  # its worker is busy; keep order for that call
                q.remove(p)
                if p.key is not None:
                    if p.last_for_key:
                        self._placed.pop(p.key, None)
                    else:
                        self._placed[p.key] = (slot, slot.generation)
                p.slot = slot
                slot.in_flight[p.req.id] = p
                assert slot.send_q is not None
                slot.send_q.put(p.payload)

    def _worker_for(self, p: _Pending, free: list[_Slot]) -> _Slot | None:
        """The worker to take `p` now, or None to keep it waiting for its own.

        A key's requests stay with the process that took its first one while that
        process lives, because its handlers hold the call's state (VAD, audio so far):
        a call split across workers would lose its words. A new key goes to its home
        worker, which it waits for while that one starts for the first time, and to
        the least busy worker when its home is down or restarting after a crash.
        """
        least_busy = min(free, key=lambda s: len(s.in_flight))
        if p.key is None or len(self._slots) == 1:
            return least_busy
        placed = self._placed.get(p.key)
        if placed is not None:
            slot, generation = placed
            if slot.generation == generation and slot.state in ("starting", "ready"):
                return slot if slot in free else None
        home = self._slots[zlib.crc32(p.key.encode()) % len(self._slots)]
        if home.state == "ready" or (home.state == "starting" and home.crashes == 0):
            return home if home in free else None
        return least_busy

    def _has_room(self, slot: _Slot) -> bool:
        return (
            slot.state == "ready"
            and slot.loading is None
            and len(slot.in_flight) < self.settings.max_in_flight
        )

    def _on_deadline(self, p: _Pending) -> None:
        p.timer = None
        if p.slot is None:
            with contextlib.suppress(ValueError):
                self._queues[p.priority].remove(p)
            where = "waiting for a worker"
        else:
            where = "in the worker"  # stays in in_flight until answered: the hang check needs it
        timeout = p.req.deadline - p.submitted
        self._missing_result(p, "timeout", f"no answer within {timeout:.2f} s ({where})")

    def _on_done(self, p: _Pending, fut: asyncio.Future[Result]) -> None:
        if not fut.cancelled():
            return
        if p.timer is not None:  # the caller gave up (call ended): forget the request
            p.timer.cancel()
        if p.slot is None:
            with contextlib.suppress(ValueError):
                self._queues[p.priority].remove(p)
        self._counts["cancelled"] += 1

    def _finish(self, p: _Pending, result: Result) -> None:
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if p.future.done():
            return
        p.future.set_result(result)
        self._counts[result.status] += 1
        if result.ok:
            window = self.settings.latency_window
            rtt = time.monotonic() - p.submitted
            self._latency.setdefault(p.req.model, deque(maxlen=window)).append(rtt)
            if result.compute_s is not None:
                compute = self._compute.setdefault(p.req.model, deque(maxlen=window))
                compute.append(result.compute_s)

    def _missing_result(self, p: _Pending, kind: str, detail: str) -> None:
        if p.last_for_key and p.key is not None:
            self._placed.pop(p.key, None)
        if not p.future.done():
            self._missing[kind] += 1
        self._finish(p, Result(p.req.id, p.req.model, "missing", reason=f"{kind}: {detail}"))

    def _count_missing(self, req_id: int, model: str, kind: str, detail: str) -> Result:
        self._counts["missing"] += 1
        self._missing[kind] += 1
        return Result(req_id, model, "missing", reason=f"{kind}: {detail}")

    def _down_reason(self) -> str:
        waits = [s.restart_at - time.monotonic() for s in self._slots if s.restart_at]
        last = next((s.last_exit for s in self._slots if s.last_exit), "not started")
        when = f"; restart in {max(0.0, min(waits)):.1f} s" if waits else ""
        return f"no inference worker running ({last}){when}"

    # -- worker processes ----------------------------------------------------------

    async def _spawn(self, slot: _Slot) -> None:
        assert self._loop is not None
        loop = self._loop
        slot.generation += 1
        slot.process = None  # the old one is reaped; the supervisor must not judge it
        slot.started_at = slot.last_heard = time.monotonic()
        slot.restart_at = slot.restart_handle = None
        slot.state, slot.loading, slot.kill_reason = "starting", None, None
        slot.loaded, slot.failed = {}, {}
        slot.exited = asyncio.Event()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker_process.run,
            args=(
                child_conn,
                self._registry,
                self._config,
                slot.index,
                slot.generation,
                self.settings.preload,
                self.settings.nice,
                os.getpid(),
            ),
            name=f"edgecall-inference-{slot.index}",
            daemon=True,
        )
        try:
            await loop.run_in_executor(self._spawner, process.start)  # off the loop
        except Exception as exc:  # e.g. out of memory or pids: treat as a crash
            child_conn.close()
            parent_conn.close()
            slot.process = None
            slot.last_exit = f"could not start: {type(exc).__name__}: {exc}"
            self._schedule_restart(slot)
            return
        finally:
            child_conn.close()
        slot.process = process
        slot.send_q = queue.SimpleQueue()
        gen = slot.generation
        sender = threading.Thread(
            target=_send_loop,
            args=(parent_conn, slot.send_q),
            daemon=True,
            name=f"inference-send-{slot.index}",
        )
        reader = threading.Thread(
            target=_read_loop,
            args=(parent_conn, sender, loop, self._on_message, slot, gen),
            daemon=True,
            name=f"inference-read-{slot.index}",
        )
        slot.threads = [sender, reader]
        sender.start()
        reader.start()
        loop.add_reader(process.sentinel, self._on_exit, slot, gen, process)

    def _on_message(self, slot: _Slot, gen: int, msg: Any) -> None:
        if gen != slot.generation or slot.state not in ("starting", "ready"):
            return  # a message from a worker already replaced
        now = slot.last_heard = time.monotonic()
        if isinstance(msg, Result):
            p = slot.in_flight.pop(msg.id, None)
            if p is None or p.future.done():
                self._counts["late"] += 1
            elif msg.status == "missing":
                self._missing_result(p, "timeout", (msg.reason or "").removeprefix("timeout: "))
            else:
                self._finish(p, dataclasses.replace(msg, model=p.req.model))
        elif isinstance(msg, WorkerEvent):
            if msg.kind == "ready":
                log.info("inference worker %d ready (pid %s)", slot.index, msg.detail)
                slot.state = "ready"
            elif msg.kind == "loading":
                slot.loading, slot.loading_since = msg.model, now
            elif msg.kind == "loaded":
                slot.loading = None
                slot.loaded[msg.model or "?"] = round(msg.seconds or 0.0, 3)
            elif msg.kind == "load_failed":
                log.error("inference worker %d: %s", slot.index, msg.detail)
                slot.loading = None
                slot.failed[msg.model or "?"] = msg.detail or "load failed"
        self._dispatch()

    def _on_exit(self, slot: _Slot, gen: int, process: Any) -> None:
        """The worker process ended (sentinel readable): fail its work, maybe restart it."""
        assert self._loop is not None
        self._loop.remove_reader(process.sentinel)
        process.join(1.0)  # the sentinel says it ended; this only reaps it
        if gen != slot.generation:
            return
        code = process.exitcode
        how = _exit_text(code)
        slot.last_exit = f"worker {slot.index} {slot.kill_reason or how}"
        if slot.send_q is not None:
            slot.send_q.put(None)
        for p in list(slot.in_flight.values()):
            if slot.kill_reason:
                self._missing_result(p, "hung", f"worker killed: {slot.kill_reason}")
            else:
                self._missing_result(p, "crash", f"worker {slot.index} {how}")
        slot.in_flight.clear()
        slot.loading = None
        slot.exited.set()
        if self._closing:
            slot.state = "stopped"
            return
        log.warning("inference %s (pid %d)", slot.last_exit, process.pid)
        if time.monotonic() - slot.started_at >= self.settings.stable_after_s:
            slot.crashes = 0
        self._schedule_restart(slot)
        if not any(s.state in ("starting", "ready") for s in self._slots):
            reason = self._down_reason()
            for q in self._queues.values():
                while q:
                    self._missing_result(q.popleft(), "unavailable", reason)
        else:
            self._dispatch()

    def _schedule_restart(self, slot: _Slot) -> None:
        assert self._loop is not None
        slot.state = "backoff"
        slot.crashes += 1
        delay = restart_delay(
            slot.crashes, self.settings.restart_min_s, self.settings.restart_max_s
        )
        slot.restart_at = time.monotonic() + delay
        log.info("inference worker %d restarts in %.1f s", slot.index, delay)
        slot.restart_handle = self._loop.call_later(delay, self._restart, slot)

    def _restart(self, slot: _Slot) -> None:
        if self._closing or self._loop is None:
            return
        self._restarts += 1
        task = self._loop.create_task(self._spawn(slot), name=f"inference-spawn-{slot.index}")
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _supervise(self) -> None:
        """Kill workers that stopped answering; their exit then restarts them."""
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for slot in self._slots:
                if slot.process is None or slot.kill_reason or slot.exited.is_set():
                    continue
                reason = self._stuck(slot, now)
                if reason is not None:
                    log.warning("inference worker %d %s: killing it", slot.index, reason)
                    slot.kill_reason = reason
                    slot.process.kill()

    def _stuck(self, slot: _Slot, now: float) -> str | None:
        """Why this worker counts as hung, or None while it is doing its job."""
        cfg = self.settings
        if slot.state == "starting":
            if now - slot.started_at > cfg.start_timeout_s:
                return f"not ready {cfg.start_timeout_s:.0f} s after start"
        elif slot.loading is not None:
            if now - slot.loading_since > cfg.load_timeout_s:
                return f"loading {slot.loading!r} took over {cfg.load_timeout_s:.0f} s"
        elif slot.in_flight:
            oldest = next(iter(slot.in_flight.values()))  # the one the worker is running
            if now > max(oldest.req.deadline, slot.last_heard) + cfg.hang_grace_s:
                return (
                    f"hung: silent {now - oldest.req.deadline:.1f} s past the deadline "
                    f"of a {oldest.req.model}.{oldest.req.method} request"
                )
        return None

    # -- health ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and latencies for `<prefix>/stats` (JSON-ready)."""
        now = time.monotonic()
        queued = sum(len(q) for q in self._queues.values())
        in_flight = sum(1 for s in self._slots for p in s.in_flight.values() if not p.future.done())
        return {
            "workers": [
                {
                    "index": s.index,
                    "state": s.state,
                    "pid": _alive_pid(s),
                    "generation": s.generation,
                    "uptime_s": round(now - s.started_at, 1) if s.state == "ready" else 0.0,
                    "loaded": dict(s.loaded),
                    "failed": dict(s.failed),
                    "last_exit": s.last_exit,
                    "restart_in_s": round(max(0.0, s.restart_at - now), 1)
                    if s.restart_at
                    else None,
                }
                for s in self._slots
            ],
            "restarts": self._restarts,
            "pending": queued + in_flight,
            "queued": queued,
            "in_flight": in_flight,
            "queue_max": self.settings.queue_max,
            "submitted": self._counts["submitted"],
            "ok": self._counts["ok"],
            "errors": self._counts["error"],
            "missing": self._counts["missing"],
            "timeouts": self._missing["timeout"] + self._missing["hung"],
            "missing_by_reason": dict(self._missing),
            "dropped": dict(self._dropped),
            "late_results": self._counts["late"],
            "cancelled": self._counts["cancelled"],
            "latency_ms": self.model_latency_ms(),
            "compute_ms": _percentiles_ms(self._compute),
        }

    def model_latency_ms(self) -> dict[str, dict[str, float]]:
        """Round-trip latency p50/p95 per model: the stats message's `model_latency_ms`."""
        return _percentiles_ms(self._latency)


def _alive_pid(slot: _Slot) -> int | None:
    alive = slot.process is not None and slot.state in ("starting", "ready")
    return slot.process.pid if alive else None


def restart_delay(crashes: int, min_s: float, max_s: float) -> float:
    """Back-off before restart number `crashes` (1-based): doubling from min_s, capped."""
    return min(max_s, min_s * 2 ** min(max(crashes, 1) - 1, 30))


def _percentiles_ms(samples: Mapping[str, deque[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for model, values in samples.items():
        if values:
            ordered = sorted(values)
            out[model] = {
                "p50": round(_nearest_rank(ordered, 0.50) * 1000, 2),
                "p95": round(_nearest_rank(ordered, 0.95) * 1000, 2),
                "n": len(ordered),
            }
    return out


def _nearest_rank(ordered: Sequence[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _pcm_bytes(audio: Any, limit: int) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why the audio is unusable)."""
    if audio is None:
        return None, None
    if hasattr(audio, "dtype"):  # numpy array
        if str(audio.dtype) != "int16" or audio.ndim != 1:
            return None, f"audio must be a 1-D int16 array, got {audio.dtype} {audio.shape}"
        audio = audio.astype("<i2", copy=False).tobytes()
    elif isinstance(audio, (bytearray, memoryview)):
        audio = bytes(audio)
    elif not isinstance(audio, bytes):
        return None, f"audio must be int16 PCM bytes or array, got {type(audio).__name__}"
    if len(audio) % 2:
        return None, f"audio has {len(audio)} bytes: not whole int16 samples"
    if len(audio) > limit:
        return None, f"audio of {len(audio)} bytes exceeds the {limit}-byte limit"
    return audio, None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def _send_loop(conn: Connection, send_q: queue.SimpleQueue[bytes | None]) -> None:
    """Write requests to the worker; blocking here (full pipe) never touches the loop."""
    while True:
        payload = send_q.get()
        try:
            if payload is None:
                conn.send_bytes(STOP)
                return
            conn.send_bytes(payload)
        except OSError:  # worker gone: its exit is handled from the process sentinel
            return


def _read_loop(
    conn: Connection,
    sender: threading.Thread,
    loop: asyncio.AbstractEventLoop,
    on_message: Any,
    slot: _Slot,
    gen: int,
) -> None:
    """Read worker messages and pass them to the loop; close the pipe at EOF."""
    try:
        while True:
            try:
                msg_id, msg = decode(conn.recv_bytes())
            except (EOFError, OSError):
                return
            if isinstance(msg, Exception):  # e.g. a result type the daemon cannot import
                reason = f"result cannot be read: {type(msg).__name__}: {msg}"
                msg = Result(msg_id, "", "error", reason=reason)
            try:
                loop.call_soon_threadsafe(on_message, slot, gen, msg)
            except RuntimeError:  # loop closed during shutdown
                return
    finally:
        sender.join(5.0)
        conn.close()


def _join_all(threads: Sequence[threading.Thread], timeout: float) -> None:
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
