"""The process's single pjsua2 Endpoint and the one thread that drives it.

pjsua2 aborts the process when called from a thread pjlib does not know, and
its objects must not be destroyed elsewhere. So one dedicated thread creates the
library, polls its events (`threadCnt = 0`: no SIP worker threads of its own)
and runs every pjsua2 call submitted through `submit()`/`post()`. pjmedia's own
clock thread (driven by the null sound device) delivers audio frames; it is a
pjlib thread, so it is registered by construction.

Only one Endpoint may exist per process at a time; a runtime may be started
again after it has stopped.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pjsua2 as pj

log = logging.getLogger("edgecall.telephony")
pjlog = logging.getLogger("edgecall.telephony.pjsip")

_POLL_MS = 10


class TelephonyError(Exception):
    """A telephony action could not be carried out; the message says why."""


class _LogWriter(pj.LogWriter):
    """Forwards pjlib log lines to Python logging (level 1 error, 2 warning, else debug)."""

    def write(self, entry: pj.LogEntry) -> None:
        level = (
            logging.ERROR
            if entry.level <= 1
            else (logging.WARNING if entry.level == 2 else logging.DEBUG)
        )
        if pjlog.isEnabledFor(level):
            pjlog.log(level, "%s", entry.msg.rstrip())


class _Endpoint(pj.Endpoint):
    """Endpoint reporting calls pjsua refused before any Account saw them (no free slot)."""

    def __init__(self, on_rejected: Callable[[pj.OnRejectedIncomingCallParam], None]) -> None:
        super().__init__()
        self._on_rejected = on_rejected

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:  # noqa: N802
        self._on_rejected(prm)


class PjRuntime:
    """Owns the Endpoint and its thread; runs submitted callables on that thread."""

    def __init__(self, name: str = "pjsua") -> None:
        self._name = name
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            queue.SimpleQueue()
        )
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ep: pj.Endpoint | None = None
        self.heartbeat = 0.0  # monotonic time of the SIP thread's latest loop iteration
        #: called on the SIP thread for an INVITE pjsua refused by itself (e.g. no call slot)
        self.on_rejected_call: Callable[[pj.OnRejectedIncomingCallParam], None] | None = None
        self._writer: _LogWriter | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(
        self,
        ep_config: Callable[[pj.EpConfig], None],
        configure: Callable[[pj.Endpoint], None],
        log_level: int = 3,
    ) -> None:
        """Create and start the library on the pj thread. `ep_config` adjusts the EpConfig
        before libInit; `configure` runs after libStart (transports, codecs, accounts).
        Raises TelephonyError on failure."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._main,
            args=(ep_config, configure, log_level, started),
            name=self._name,
            daemon=True,
        )
        self._thread.start()
        try:
            started.result(timeout=30)
        except TelephonyError:
            self._thread.join(timeout=10)
            raise

    def stop(self, before_destroy: Callable[[], None] | None = None, timeout: float = 15) -> None:
        """Run `before_destroy` on the pj thread, destroy the library, end the thread."""
        if self._thread is None:
            return
        if before_destroy is not None and self._thread.is_alive():
            try:
                self.submit(before_destroy).result(timeout=timeout)
            except Exception:
                log.exception("error while shutting telephony down")
        self._stop.set()
        self._thread.join(timeout=timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # -- work submission -------------------------------------------------------------------

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run fn on the pj thread; its result or exception lands in the returned future."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if not self.running:
            fut.set_exception(TelephonyError("telephony is not running"))
            return fut
        self._commands.put((fn, fut))
        return fut

    def schedule(self, delay_s: float, fn: Callable[[], Any]) -> None:
        """Run fn on the pj thread after delay_s. Only call from the pj thread."""
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))

    def on_pj_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def register_current_thread(self, name: str) -> None:
        """Make the calling thread known to pjlib, as a safety net for stray destructors."""
        if self.ep is not None and not self.ep.libIsThreadRegistered():
            self.ep.libRegisterThread(name)

    # -- the pj thread ---------------------------------------------------------------------

    def _main(
        self,
        ep_config: Callable[[pj.EpConfig], None],
        configure: Callable[[pj.Endpoint], None],
        log_level: int,
        started: concurrent.futures.Future,
    ) -> None:
        # The Endpoint lives only in self.ep, never in a local: a logged traceback keeps
        # its frames alive, and a frame holding the Endpoint would block the next start.
        error = self._boot(ep_config, configure, log_level)
        if error is not None:
            self._teardown()
            started.set_exception(error)
            return
        started.set_result(None)
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                self.ep.libHandleEvents(_POLL_MS)
                self._run_due()
            except Exception:
                log.exception("telephony thread iteration failed; continuing")
        self._drain(TelephonyError("telephony stopped"))
        self._teardown()

    def _rejected(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        if self.on_rejected_call is not None:
            self.on_rejected_call(prm)

    def _boot(
        self,
        ep_config: Callable[[pj.EpConfig], None],
        configure: Callable[[pj.Endpoint], None],
        log_level: int,
    ) -> TelephonyError | None:
        try:
            self.ep = _Endpoint(self._rejected)
            self.ep.libCreate()
            cfg = pj.EpConfig()
            cfg.uaConfig.threadCnt = 0
            cfg.uaConfig.mainThreadOnly = False
            cfg.uaConfig.userAgent = "edgecall"
            self._writer = _LogWriter()
            cfg.logConfig.writer = self._writer
            cfg.logConfig.level = log_level
            cfg.logConfig.consoleLevel = log_level
            cfg.logConfig.decor = 0
            ep_config(cfg)
            self.ep.libInit(cfg)
            self.ep.libStart()
            configure(self.ep)
        except pj.Error as exc:
            return TelephonyError(f"cannot start SIP stack: {exc.info()}")
        except TelephonyError as exc:
            return TelephonyError(str(exc))
        except Exception as exc:  # a configure() bug: report it, never hang the caller
            return TelephonyError(f"cannot start SIP stack: {exc!r}")
        return None

    def _run_due(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                break
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except pj.Error as exc:
                fut.set_exception(TelephonyError(exc.info()))
            except BaseException as exc:
                # no traceback: its frames would keep pjsua2 objects (calls) alive
                fut.set_exception(exc.with_traceback(None))
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:
                log.exception("telephony timer failed")

    def _drain(self, exc: Exception) -> None:
        while True:
            try:
                _, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(exc)

    def _teardown(self) -> None:
        self._timers.clear()
        self.on_rejected_call = None
        if self.ep is None:
            return
        try:
            # calls are hung up and the account unregistered by then (SipEngine.shutdown),
            # so skip pjsua's fixed one-second wait for network activity
            self.ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
        except pj.Error as exc:
            log.warning("libDestroy: %s", exc.info())
        self.ep = None
        self._writer = None

    def pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Handle events for up to `seconds` on the pj thread (used while shutting down)."""
        assert self.ep is not None and self.on_pj_thread()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            self.ep.libHandleEvents(_POLL_MS)
