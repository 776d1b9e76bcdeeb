"""The SMS that explains a poor-signal hang-up, through one of the configured routes.

Routes (`trunk.sms.route`): `modem` (the trunk modem, text mode, see `modem` and
`sms_text`), `mqtt` (a request published for head office to send), `sip_message`
(a SIP MESSAGE to the trunk, sent by the telephony layer), `none`.

`SmsSender.send` never raises and never waits longer than `sms.timeout_s`; each
attempt and its result are reported as event dicts through `on_event`, so the
call's outcome can say whether the SMS went out. `send_in_background` lets the
hang-up go on at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgecall.config.trunk import TrunkConfig
from edgecall.messages import Identity, envelope
from edgecall.trunk.modem import Modem, SmsSubmitError
from edgecall.trunk.sms_text import (
    choose_charset,
    normalise_number,
    normalise_text,
    split_parts,
)

log = logging.getLogger(__name__)

SMS_REQUEST_SCHEMA = "edgecall.sms-request/1"
Event = dict[str, Any]


@dataclass(frozen=True)
class SmsResult:
    ok: bool
    route: str
    parts: int = 0
    refs: list[int] = field(default_factory=list)
    error: str | None = None


class SmsRoute(Protocol):
    name: str

    async def send(self, number: str, text: str, *, call_id: str | None) -> SmsResult:
        """Send or hand over the SMS; may raise, the sender turns that into a failed result."""
        ...


class SipMessageSender(Protocol):
    """Implemented by the telephony layer: a SIP MESSAGE with a text/plain body."""

    async def send_message(self, uri: str, text: str) -> bool: ...


class ModemSmsRoute:
    name = "modem"

    def __init__(self, modem: Modem, *, timeout_s: float) -> None:
        self.modem = modem
        self.timeout_s = timeout_s

    async def send(self, number: str, text: str, *, call_id: str | None) -> SmsResult:
        try:
            refs = await self.modem.send_sms(number, text, timeout_s=self.timeout_s)
        except SmsSubmitError as exc:
            return SmsResult(False, self.name, len(exc.sent_refs), exc.sent_refs, str(exc))
        return SmsResult(True, self.name, len(refs), refs)


class MqttSmsRoute:
    """Hands the SMS to head office: `publish` gets the enveloped request message."""

    name = "mqtt"

    def __init__(
        self, publish: Callable[[dict[str, Any]], Awaitable[object]], identity: Identity
    ) -> None:
        self.publish = publish
        self.identity = identity

    async def send(self, number: str, text: str, *, call_id: str | None) -> SmsResult:
        text = normalise_text(text)
        parts = len(split_parts(text, choose_charset(text)))
        message = envelope(
            self.identity,
            SMS_REQUEST_SCHEMA,
            {"to": number, "text": text, "reason": "poor_signal"},
            call_id=call_id,
        )
        accepted = await self.publish(message)
        if accepted is False:
            return SmsResult(False, self.name, error="publisher refused the request")
        return SmsResult(True, self.name, parts)


class SipMessageSmsRoute:
    name = "sip_message"

    def __init__(self, sender: SipMessageSender, uri_template: str) -> None:
        self.sender = sender
        self.uri_template = uri_template

    async def send(self, number: str, text: str, *, call_id: str | None) -> SmsResult:
        uri = self.uri_template.replace("{number}", number)
        if await self.sender.send_message(uri, normalise_text(text)):
            return SmsResult(True, self.name, 1)
        return SmsResult(False, self.name, error=f"SIP MESSAGE to {uri} failed")


def build_route(
    config: TrunkConfig,
    *,
    modem: Modem | None = None,
    publish: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
    identity: Identity | None = None,
    sip_sender: SipMessageSender | None = None,
) -> SmsRoute | None:
    """The configured route; raises ValueError at start-up if its dependency is missing."""
    route = config.sms.route
    if route == "none":
        return None
    if route == "modem":
        if modem is None:
            raise ValueError("SMS route 'modem' needs the modem")
        return ModemSmsRoute(modem, timeout_s=config.sms.timeout_s)
    if route == "mqtt":
        if publish is None or identity is None:
            raise ValueError("SMS route 'mqtt' needs a publisher and the appliance identity")
        return MqttSmsRoute(publish, identity)
    if sip_sender is None or config.sms.sip_message_uri is None:
        raise ValueError("SMS route 'sip_message' needs the SIP layer and sip_message_uri")
    return SipMessageSmsRoute(sip_sender, config.sms.sip_message_uri)


class SmsSender:
    """Sends through one route; never raises, never blocks the caller past `timeout_s`."""

    def __init__(
        self,
        route: SmsRoute | None,
        *,
        timeout_s: float,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.route = route
        self.timeout_s = timeout_s
        self.on_event = on_event
        self._tasks: set[asyncio.Task[SmsResult]] = set()

    async def send(self, number: str, text: str, *, call_id: str | None = None) -> SmsResult:
        route_name = self.route.name if self.route is not None else "none"
        attempt = uuid.uuid4().hex
        base = {"attempt_id": attempt, "route": route_name, "to": number, "call_id": call_id}
        self._event({"type": "sms_attempt", **base, "chars": len(text)})
        result = await self._try(number, text, call_id, route_name)
        self._event(
            {
                "type": "sms_result",
                **base,
                "ok": result.ok,
                "parts": result.parts,
                "refs": result.refs,
                "error": result.error,
            }
        )
        return result

    def send_in_background(
        self, number: str, text: str, *, call_id: str | None = None
    ) -> asyncio.Task[SmsResult]:
        """Start sending and return at once (the task is kept until it finishes)."""
        task = asyncio.create_task(self.send(number, text, call_id=call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _try(self, number: str, text: str, call_id: str | None, route_name: str) -> SmsResult:
        if self.route is None:
            return SmsResult(False, route_name, error="SMS route is 'none'")
        try:
            number = normalise_number(number)
        except ValueError as exc:
            return SmsResult(False, route_name, error=str(exc))
        if not text.strip():
            return SmsResult(False, route_name, error="empty text")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.route.send(number, text, call_id=call_id)
        except TimeoutError:
            return SmsResult(False, route_name, error=f"no result in {self.timeout_s:g} s")
        except Exception as exc:  # any route failure is a failed SMS, never the caller's crash
            log.warning("SMS via %s failed: %s", route_name, exc)
            return SmsResult(False, route_name, error=f"{type(exc).__name__}: {exc}")

    def _event(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("SMS event listener failed")
