"""One call's quality series: one sample a second, from the best source that can tell.

Sources (`trunk.sources`, best first): `modem` (the trunk modem's signal, pushed
by a `SignalPoller`), `sip_header` (a value the trunk puts on the call's SIP
messages, pushed by the telephony layer), `rtp` (the call's RTP statistics,
pushed as dicts, see `rtp_mapping`). Each second the first source with a fresh
value inside [valid_dbm_min, valid_dbm_max] gives the sample; if none has one,
the sample is `dbm=None`. Whenever the chosen source changes a note says from
what, to what, and why, so a dropped modem is visible in the call's events.

`QualityCombiner` is pure (times are passed in); `CallQuality` runs it on a timer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgecall.config.trunk import TrunkConfig
from edgecall.trunk.modem import SignalPoller
from edgecall.trunk.rtp_mapping import RtpStatsError, rtp_stats_to_dbm
from edgecall.trunk.signal import SignalReading

log = logging.getLogger(__name__)

Sample = dict[str, Any]  # {"t": s since call start, "dbm": float | None, "source": str | None}
Note = dict[str, Any]  # {"t", "type": "quality_source_changed", "from", "to", "reason"}


@dataclass(frozen=True)
class _Value:
    dbm: float | None
    t: float
    reason: str | None = None


@dataclass(frozen=True)
class Tick:
    sample: Sample
    note: Note | None


class QualityCombiner:
    """Chooses, each second, the first configured source with a usable value."""

    def __init__(self, config: TrunkConfig, *, start_t: float = 0.0) -> None:
        self.config = config
        self.start_t = start_t
        self._pattern = re.compile(config.sip_header.pattern)
        self._latest: dict[str, _Value] = {}
        self._current: str | None = None
        self._sampled = False

    # -- inputs ----------------------------------------------------------------------

    def push_modem(self, reading: SignalReading, t: float) -> None:
        self._latest["modem"] = _Value(reading.dbm, t, reading.reason)

    def push_sip_header(self, value: str, t: float) -> None:
        """The raw value of the configured header, e.g. '-97' or 'rssi=-97dBm'."""
        m = self._pattern.search(value)
        try:
            dbm = float(m.group(1)) if m else None
        except (IndexError, ValueError):
            dbm = None
        reason = None if dbm is not None else f"header value {value[:40]!r} does not match"
        self._latest["sip_header"] = _Value(dbm, t, reason)

    def push_sip_headers(self, headers: Mapping[str, str], t: float) -> None:
        """All headers of a SIP message (INVITE, re-INVITE, INFO); others are ignored."""
        wanted = self.config.sip_header.header.lower()
        for name, value in headers.items():
            if name.lower() == wanted:
                self.push_sip_header(value, t)
                return

    def push_rtp(self, stats: Mapping[str, object], t: float) -> None:
        try:
            self._latest["rtp"] = _Value(rtp_stats_to_dbm(stats, self.config.rtp), t)
        except RtpStatsError as exc:
            self._latest["rtp"] = _Value(None, t, str(exc))

    # -- output ----------------------------------------------------------------------

    def _why_not(self, source: str, t: float) -> str | None:
        """None when the source is usable at `t`, else the reason."""
        value = self._latest.get(source)
        if value is None:
            return "no value yet"
        stale_after = (
            self.config.sip_header.stale_after_s
            if source == "sip_header"
            else self.config.stale_after_s
        )
        if t - value.t > stale_after:
            last = f"; last: {value.reason}" if value.reason else ""
            return f"no value for {t - value.t:.1f} s{last}"
        if value.dbm is None:
            return value.reason or "unknown value"
        if not self.config.valid_dbm_min <= value.dbm <= self.config.valid_dbm_max:
            return (
                f"{value.dbm:g} dBm outside {self.config.valid_dbm_min:g}.."
                f"{self.config.valid_dbm_max:g}"
            )
        return None

    def sample(self, t: float) -> Tick:
        reasons: list[str] = []
        chosen: str | None = None
        for source in self.config.sources:
            why = self._why_not(source, t)
            if why is None:
                chosen = source
                break
            reasons.append(f"{source}: {why}")
        rel_t = round(t - self.start_t, 3)
        dbm = self._latest[chosen].dbm if chosen is not None else None
        note = None
        if not self._sampled:
            if reasons:
                note = self._note(rel_t, None, chosen, reasons)
        elif chosen != self._current:
            if self._rank(chosen) < self._rank(self._current):
                reasons = [f"{chosen} has a usable value again"]
            note = self._note(rel_t, self._current, chosen, reasons)
        self._sampled = True
        self._current = chosen
        return Tick({"t": rel_t, "dbm": dbm, "source": chosen}, note)

    def _rank(self, source: str | None) -> int:
        sources = list(self.config.sources)
        return sources.index(source) if source in sources else len(sources)

    @staticmethod
    def _note(t: float, old: str | None, new: str | None, reasons: list[str]) -> Note:
        return {
            "t": t,
            "type": "quality_source_changed",
            "from": old,
            "to": new,
            "reason": "; ".join(reasons),
        }


class CallQuality:
    """Runs one call's combiner on the sampling timer until cancelled.

    The telephony layer pushes SIP headers and RTP stats into `combiner`; a modem
    poller, if given, is subscribed for the call's lifetime. `samples` keeps the
    whole series for the hang-up rules.
    """

    def __init__(
        self,
        config: TrunkConfig,
        *,
        on_sample: Callable[[Sample], None] | None = None,
        on_note: Callable[[Note], None] | None = None,
        poller: SignalPoller | None = None,
    ) -> None:
        self.config = config
        self.on_sample = on_sample
        self.on_note = on_note
        self.poller = poller
        self.combiner = QualityCombiner(config)
        self.samples: list[Sample] = []
        self.notes: list[Note] = []

    @property
    def series(self) -> list[float | None]:
        return [s["dbm"] for s in self.samples]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.combiner.start_t = loop.time()
        unsubscribe = self.poller.subscribe(self.combiner.push_modem) if self.poller else None
        if self.poller is not None and self.poller.latest is not None:
            self.combiner.push_modem(*self.poller.latest)
        try:
            next_t = loop.time()
            while True:
                next_t += self.config.sample_interval_s
                await asyncio.sleep(max(0.0, next_t - loop.time()))
                self._emit(self.combiner.sample(loop.time()))
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def _emit(self, tick: Tick) -> None:
        if tick.note is not None:
            self.notes.append(tick.note)
            log.info("call quality source: %s", tick.note)
            _deliver(self.on_note, tick.note)
        self.samples.append(tick.sample)
        _deliver(self.on_sample, tick.sample)


def _deliver(listener: Callable[[dict[str, Any]], None] | None, item: dict[str, Any]) -> None:
    """A failing listener is logged; it must not stop the series."""
    if listener is None:
        return
    try:
        listener(item)
    except Exception:
        log.exception("quality listener failed on %s", item)
