"""The trunk's GSM/LTE modem: its signal once a second, and SMS in text mode.

`read_signal` never raises: a silent, unplugged or confused modem gives a
reading with `dbm=None` and the reason, so the quality series can fall back to
the next source and say why. A lost port is reopened, at most once every
`reconnect_interval_s`, so a re-plugged modem comes back by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from edgecall.config.trunk import ModemConfig
from edgecall.trunk.at import AtChannel, AtCommandError, AtError, AtTimeout, ModemUnavailable
from edgecall.trunk.signal import (
    SignalParseError,
    SignalReading,
    parse_cesq,
    parse_csq,
    parse_qcsq,
)
from edgecall.trunk.sms_text import (
    choose_charset,
    normalise_number,
    normalise_text,
    split_parts,
    ucs2_hex,
)

log = logging.getLogger(__name__)

_PARSERS = {"AT+QCSQ": parse_qcsq, "AT+CESQ": parse_cesq, "AT+CSQ": parse_csq}


class SmsSubmitError(AtError):
    """An SMS part was refused or got no answer; `sent_refs` are the parts that left."""

    def __init__(self, message: str, sent_refs: list[int]) -> None:
        super().__init__(message)
        self.sent_refs = sent_refs


class Modem:
    """One modem port shared by every call: signal polling and SMS take turns on it."""

    def __init__(
        self,
        config: ModemConfig,
        *,
        on_urc: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.channel = AtChannel(timeout_s=config.command_timeout_s, on_urc=on_urc)
        self._clock = clock
        self._last_open_attempt: float | None = None
        self._open_error = "not opened yet"
        self._unsupported: set[str] = set()
        self._sms_lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the port and set it up (echo off, numeric errors). Raises ModemUnavailable."""
        self._last_open_attempt = self._clock()
        if self.config.device is not None:
            await self.channel.open_serial(self.config.device, self.config.baudrate)
        else:
            assert self.config.tcp is not None
            host, _, port = self.config.tcp.rpartition(":")
            await self.channel.open_tcp(host, int(port))
        for setup in ("ATE0", "AT+CMEE=1"):
            with contextlib.suppress(AtCommandError, AtTimeout):
                await self.channel.command(setup)

    async def _ensure_open(self) -> str | None:
        """None when the port is usable, else why not."""
        if self.channel.is_open:
            return None
        now = self._clock()
        if (
            self._last_open_attempt is not None
            and now - self._last_open_attempt < self.config.reconnect_interval_s
        ):
            return f"modem unavailable ({self._open_error})"
        try:
            await self.open()
        except ModemUnavailable as exc:
            self._open_error = str(exc)
            return f"modem unavailable ({exc})"
        log.info("modem port opened")
        return None

    def close(self) -> None:
        self.channel.close()

    # -- signal ----------------------------------------------------------------------

    def _signal_commands(self) -> list[str]:
        order = ["AT+CESQ", "AT+CSQ"]
        if self.config.vendor == "quectel":
            order.insert(0, "AT+QCSQ")
        return [c for c in order if c not in self._unsupported]

    async def read_signal(self) -> SignalReading:
        """The best signal report the modem gives now; never raises."""
        problem = await self._ensure_open()
        if problem is not None:
            return SignalReading(None, reason=problem)
        reasons: list[str] = []
        for command in self._signal_commands():
            try:
                lines = await self.channel.command(command)
            except AtTimeout as exc:
                return SignalReading(None, reason=f"timeout ({exc})")
            except ModemUnavailable as exc:
                self._open_error = str(exc)
                return SignalReading(None, reason=f"modem unavailable ({exc})")
            except AtCommandError as exc:
                if exc.kind == "ERROR" or exc.code in ("4", "operation not supported"):
                    self._unsupported.add(command)  # the module does not have this command
                reasons.append(str(exc))
                continue
            if not lines:
                reasons.append(f"{command}: OK without a report")
                continue
            try:
                reading = _PARSERS[command](lines[-1])
            except SignalParseError as exc:
                reasons.append(f"{command}: {exc}")
                continue
            if reading.dbm is not None:
                return reading
            reasons.append(f"{command}: {reading.reason}")
        return SignalReading(None, reason="; ".join(reasons) or "no signal command answered")

    # -- SMS -------------------------------------------------------------------------

    async def send_sms(self, number: str, text: str, *, timeout_s: float = 30.0) -> list[int]:
        """Send `text` to `number` in text mode; return the message references (+CMGS).

        Raises ValueError for a bad number, AtError (SmsSubmitError, ModemUnavailable, ...)
        when the modem refuses or does not answer.
        """
        da_plain = normalise_number(number)
        text = normalise_text(text)
        charset = choose_charset(text)
        parts = split_parts(text, charset)
        toa = 145 if da_plain.startswith("+") else 129
        da = da_plain if charset == "GSM" else ucs2_hex(da_plain)
        dcs = 0 if charset == "GSM" else 8
        async with self._sms_lock:
            problem = await self._ensure_open()
            if problem is not None:
                raise ModemUnavailable(problem)
            await self.channel.command("AT+CMGF=1")
            await self.channel.command(f'AT+CSCS="{charset}"')
            await self.channel.command(f"AT+CSMP=17,167,0,{dcs}")
            refs: list[int] = []
            for i, part in enumerate(parts, 1):
                body = part.encode("ascii") if charset == "GSM" else ucs2_hex(part).encode("ascii")
                try:
                    lines = await self.channel.command_with_prompt(
                        f'AT+CMGS="{da}",{toa}', body, timeout_s=timeout_s
                    )
                except AtError as exc:
                    raise SmsSubmitError(f"part {i}/{len(parts)}: {exc}", refs) from None
                refs.append(_message_ref(lines))
            return refs


def _message_ref(lines: list[str]) -> int:
    for line in lines:
        head, _, value = line.partition(":")
        if head.strip().upper() == "+CMGS" and value.strip().isdigit():
            return int(value.strip())
    return -1  # accepted (OK) but the reference was not reported


class SignalPoller:
    """Reads the modem's signal every `interval_s` and hands each reading to listeners.

    One poller per modem, however many calls are up: each call's combiner subscribes
    while the call lasts. `t` is the event loop's clock (`loop.time()`).
    """

    def __init__(self, modem: Modem, interval_s: float) -> None:
        self.modem = modem
        self.interval_s = interval_s
        self.latest: tuple[SignalReading, float] | None = None
        self._listeners: list[Callable[[SignalReading, float], None]] = []

    def subscribe(self, listener: Callable[[SignalReading, float], None]) -> Callable[[], None]:
        """Add a listener; returns the function that removes it again."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def poll_once(self) -> SignalReading:
        reading = await self.modem.read_signal()
        t = asyncio.get_running_loop().time()
        self.latest = (reading, t)
        for listener in list(self._listeners):
            try:
                listener(reading, t)
            except Exception:
                log.exception("signal listener failed")
        return reading

    async def run(self) -> None:
        """Poll until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.poll_once()
            await asyncio.sleep(max(0.0, self.interval_s - (loop.time() - started)))
