"""The inference worker: a separate process that owns the models and runs them.

Started by `edgecall.inference.worker.InferenceClient` with the 'spawn' context (the
daemon has PJSUA2 threads, which a fork would copy in an undefined state). It serves
one request at a time from its pipe, so a model's CPU work and its GIL never touch
the process that carries SIP media.

A handler is a class with a no-argument constructor, `load(config)` and public
methods; the registry maps a model name to "package.module:Class". Handlers are
imported and loaded on first use (or at start for `preload`), and a failed load is
remembered, so a missing model file gives an error result per request instead of a
crash loop. Audio arrives as int16 PCM bytes and is handed to the method as the
`audio` keyword, a read-only numpy int16 array (no copy).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from edgecall.inference.protocol import STOP, Request, Result, WorkerEvent, decode, encode

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def import_handler(path: str) -> type:
    """Resolve "package.module:Class"; raises ImportError/AttributeError with the path."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"handler path {path!r} must look like 'package.module:Class'")
    return getattr(importlib.import_module(module_name), attr)


class _Worker:
    def __init__(
        self,
        conn: Connection,
        registry: Mapping[str, str],
        config: Any,
        index: int,
        generation: int,
    ) -> None:
        self.conn = conn
        self.registry = registry
        self.config = config
        self.index = index
        self.generation = generation
        self.handlers: dict[str, Any] = {}
        self.failed: dict[str, str] = {}

    def handler(self, name: str) -> Any:
        """The loaded handler, loading it now if needed; raises RuntimeError if it cannot be."""
        if name in self.handlers:
            return self.handlers[name]
        if name in self.failed:
            raise RuntimeError(self.failed[name])
        self.event(WorkerEvent("loading", model=name))
        start = time.perf_counter()
        try:
            handler = import_handler(self.registry[name])()
            handler.load(self.config)
        except Exception as exc:  # any failure of a model's load is reported, not fatal
            reason = f"model {name!r} unavailable: {type(exc).__name__}: {exc}"
            self.failed[name] = reason
            self.event(WorkerEvent("load_failed", model=name, detail=reason))
            raise RuntimeError(reason) from None
        self.handlers[name] = handler
        self.event(WorkerEvent("loaded", model=name, seconds=time.perf_counter() - start))
        return handler

    def serve(self, req: Request) -> Result:
        def result(status: str, **kw: Any) -> Result:
            return Result(
                req.id, req.model, status, worker=self.index, generation=self.generation, **kw
            )

        if time.monotonic() > req.deadline:
            return result("missing", reason="timeout: expired before the worker reached it")
        try:
            handler = self.handler(req.model)
        except RuntimeError as exc:
            return result("error", reason=str(exc))
        fn = getattr(handler, req.method, None)
        if req.method.startswith("_") or req.method == "load" or not callable(fn):
            return result("error", reason=f"model {req.model!r} has no method {req.method!r}")
        kwargs = dict(req.kwargs)
        if req.audio is not None:
            import numpy as np

            kwargs["audio"] = np.frombuffer(req.audio, dtype="<i2")
        start = time.perf_counter()
        try:
            value = fn(**kwargs)
        except Exception as exc:  # the handler's failure is this request's error, nothing more
            return result(
                "error",
                reason=f"{type(exc).__name__}: {exc}",
                compute_s=time.perf_counter() - start,
            )
        return result("ok", value=value, compute_s=time.perf_counter() - start)

    def event(self, event: WorkerEvent) -> None:
        self.conn.send_bytes(encode(0, event))

    def reply(self, res: Result) -> None:
        try:
            frame = encode(res.id, res)
        except Exception as exc:  # an unpicklable return value: this request's error
            reason = f"result cannot be sent back: {type(exc).__name__}: {exc}"
            frame = encode(
                res.id, dataclasses.replace(res, status="error", value=None, reason=reason)
            )
        self.conn.send_bytes(frame)


def _name_process(registry: Mapping[str, str]) -> None:
    """Show what the worker serves ("analysis+scene", "tts") in ps and top, and so to a
    technician or a benchmark telling the workers apart (Linux keeps 15 bytes)."""
    if sys.platform.startswith("linux"):
        name = "+".join(sorted(registry)).encode()[:15]
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the daemon dies, so no orphan keeps models."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def run(
    conn: Connection,
    registry: Mapping[str, str],
    config: Any,
    index: int,
    generation: int,
    preload: Sequence[str],
    nice: int,
    parent_pid: int,
) -> None:
    """Entry point of the worker process; returns when the daemon closes the pipe."""
    _die_with_parent(parent_pid)
    _name_process(registry)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    if nice:
        os.nice(nice)  # on a 2-core box the SIP media thread comes first
    worker = _Worker(conn, registry, config, index, generation)
    try:
        worker.event(WorkerEvent("ready", detail=str(os.getpid())))
        for name in preload:
            with contextlib.suppress(RuntimeError):  # reported as load_failed already
                worker.handler(name)
        while True:
            frame = conn.recv_bytes()
            if frame == STOP:
                return
            req_id, req = decode(frame)
            if isinstance(req, Exception):
                reason = f"request cannot be read: {type(req).__name__}: {req}"
                worker.reply(Result(req_id, "", "error", reason=reason, worker=index))
            else:
                worker.reply(worker.serve(req))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the daemon went away or closed the pipe: nothing left to serve
    finally:
        conn.close()
