"""The head-office link: one asyncio task that keeps an MQTT session alive.

`MqttLink.run()` connects, announces `online` (retained; the Last Will says
`offline`), drains the outbox in order, answers commands and publishes health,
and on any failure backs off (exponential, capped, with jitter) and starts over
from the oldest unacknowledged message. Callers only queue: `publish_event()`
and friends return once the message is on disk, whether or not the broker is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import aiomqtt

from edgecall import __version__
from edgecall.config.base import SecretError
from edgecall.config.mqtt import MqttConfig, MqttTlsConfig
from edgecall.messages import Identity, encode, envelope, utc_now_iso
from edgecall.mqtt.commands import CommandRegistry, CommandRequest, Handler
from edgecall.mqtt.outbox import SPILL_RETRY_S, Kind, Message, Outbox
from edgecall.mqtt.topics import Topics, default_prefix

log = logging.getLogger("edgecall.mqtt.link")

STATUS_SCHEMA = "edgecall.status/1"
STATS_SCHEMA = "edgecall.stats/1"
REPLY_SCHEMA = "edgecall.command-reply/1"
STOP_DRAIN_S = 3.0  # on clean shutdown, how long to keep draining before 'stopped'


class LinkState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    TLS_FAILED = "tls_failed"
    CONFIG_ERROR = "config_error"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DISABLED = "disabled"


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Delay before reconnect attempt `attempt` (0-based): doubling, capped, 50-100% jitter.

    The jitter keeps a site's appliances from reconnecting in lockstep after a
    head-office broker restart.
    """
    base = min(cap, initial * (2 ** min(attempt, 30)))
    return base * rng.uniform(0.5, 1.0)


def classify_error(text: str) -> LinkState:
    """Name the fault a technician has to fix from aiomqtt/paho/ssl error text."""
    low = text.lower()
    if "not authori" in low or "bad user" in low or "username or password" in low:
        return LinkState.AUTH_FAILED
    if "certificate" in low or "ssl" in low or "tls" in low or "handshake" in low:
        return LinkState.TLS_FAILED
    if (
        "refused" in low
        or "timed out" in low
        or "unreachable" in low
        or "name or service" in low
        or "no route" in low
        or "temporary failure in name resolution" in low
    ):
        return LinkState.UNREACHABLE
    return LinkState.DISCONNECTED


def payload_bytes(message: aiomqtt.Message) -> bytes:
    """A received message's payload as bytes, whatever type aiomqtt handed it in."""
    payload = message.payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class TlsConfigError(ValueError):
    """The configured CA, certificate or key cannot be used."""


def tls_context(tls: MqttTlsConfig) -> ssl.SSLContext:
    """Client TLS context; raises TlsConfigError naming the problem (never key contents)."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"TLS files unusable ({exc})") from None
    if tls.insecure_skip_hostname_check:
        ctx.check_hostname = False
    return ctx


class MqttLink:
    """Owns the broker session; see module docstring. Create, register commands, `run()`."""

    def __init__(
        self,
        config: MqttConfig,
        identity: Identity,
        outbox: Outbox,
        *,
        stats_provider: Callable[[], dict[str, Any]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.topics = Topics(
            config.topic_prefix or default_prefix(identity.site_id, identity.appliance_id)
        )
        self.commands = CommandRegistry(
            max_bytes=config.max_command_bytes, timeout_s=config.command_timeout_s
        )
        self.commands.register("ping", self._ping)
        self._stats_provider = stats_provider
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self.state = LinkState.DISABLED if not config.enabled else LinkState.STARTING
        self.connected_since: str | None = None
        self.connections = 0
        self.failed_attempts = 0
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.published = 0
        self._last_failure: tuple[LinkState, str] | None = None

    # --------------------------------------------------------- queueing API

    async def publish_event(self, message: dict[str, Any]) -> str:
        """Queue a per-turn or per-call event (envelope with call_id); returns its message_id."""
        call_id = message.get("call_id")
        if not isinstance(call_id, str):
            raise ValueError("an event needs a call_id in its envelope")
        return await self._queue(self.topics.events(call_id), message, "event")

    async def publish_outcome(self, message: dict[str, Any]) -> str:
        """Queue the one outcome record of a call; never dropped."""
        return await self._queue(self.topics.outcomes, message, "outcome")

    async def publish_prompt(self, extension: str, message: dict[str, Any]) -> str:
        """Queue an agent-assist prompt or hand-over transcript for one extension."""
        return await self._queue(self.topics.prompts(extension), message, "prompt")

    async def publish_sms_request(self, message: dict[str, Any]) -> str:
        """Queue an SMS for head office to send (route 'mqtt'); never dropped when full."""
        return await self._queue(f"{self.topics.prefix}/sms", message, "request")

    async def publish_to(self, topic: str, message: dict[str, Any], kind: Kind) -> str:
        """Queue a message for a topic outside the prefix (the site's shared work)."""
        return await self._queue(topic, message, kind)

    async def publish_other(self, subtopic: str, message: dict[str, Any]) -> str:
        """Queue anything else under the prefix (kind 'other', dropped after events)."""
        return await self._queue(f"{self.topics.prefix}/{subtopic}", message, "other")

    async def _queue(self, topic: str, message: dict[str, Any], kind: Kind) -> str:
        message_id = message.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise ValueError("message has no message_id: build it with edgecall.messages.envelope")
        await self.outbox.put(topic, encode(message), kind=kind, message_id=message_id, qos=1)
        self._wake.set()
        return message_id

    def register_command(
        self, name: str, handler: Handler, *, args_schema: dict[str, Any] | None = None
    ) -> None:
        """Handle `<prefix>/cmd/<name>`; built-in names validate args with schemas/command.json."""
        self.commands.register(name, handler, args_schema=args_schema)

    # --------------------------------------------------------------- status

    def stats(self) -> dict[str, Any]:
        """Health snapshot, the body of <prefix>/stats (schemas/stats.json)."""
        body: dict[str, Any] = {}
        if self._stats_provider is not None:
            try:
                body.update(self._stats_provider())
            except Exception:
                log.exception("stats provider failed; publishing link stats only")
        body.update(
            uptime_s=round(time.monotonic() - self._started, 1),
            link={
                "state": str(self.state),
                "connected": self.state is LinkState.CONNECTED,
                "connected_since": self.connected_since,
                "connections": self.connections,
                "failed_attempts": self.failed_attempts,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "published": self.published,
                "commands": self.commands.received,
                "command_errors": self.commands.errors,
            },
            outbox=self.outbox.stats(),
        )
        return body

    async def _ping(self, request: CommandRequest) -> dict[str, Any]:
        return {
            "pong": True,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "version": __version__,
            "outbox_depth": self.outbox.depth,
        }

    def _status(self, state: str) -> bytes:
        return encode(
            envelope(self.identity, STATUS_SCHEMA, {"state": state, "version": __version__})
        )

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask `run()` to drain briefly, publish 'stopped' and return."""
        self._stop.set()

    async def run(self) -> None:
        """Keep the session up until `stop()`; never raises for broker or network faults."""
        if not self.config.enabled:
            log.info("mqtt disabled: messages stay queued in %s", self.outbox.path)
            await self._stop.wait()
            return
        attempt = 0
        try:
            while not self._stop.is_set():
                self._set_state(LinkState.CONNECTING)
                try:
                    await self._session()
                except (aiomqtt.MqttError, OSError) as exc:
                    if self.state is LinkState.CONNECTED:
                        attempt = 0
                    self._fail(classify_error(str(exc)), str(exc))
                except (SecretError, TlsConfigError) as exc:
                    self._fail(LinkState.CONFIG_ERROR, str(exc))
                except Exception as exc:  # a bug must not end the link: log it, reconnect
                    log.exception("mqtt session failed unexpectedly")
                    self._fail(LinkState.DISCONNECTED, f"{type(exc).__name__}: {exc}")
                finally:
                    self._client = None
                    self.connected_since = None
                if self._stop.is_set():
                    break
                delay = backoff_delay(
                    attempt, self.config.reconnect_initial_s, self.config.reconnect_max_s, self._rng
                )
                attempt += 1
                log.debug("reconnecting in %.2f s", delay)
                await self._sleep_or_stop(delay)
        finally:
            self._set_state(LinkState.STOPPED)

    async def _sleep_or_stop(self, delay: float) -> None:
        end = time.monotonic() + delay
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(left, 1.0))
            await self.outbox.retry_spill()

    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            log.debug("link state %s -> %s", self.state, state)
        self.state = state

    def _fail(self, state: LinkState, error: str) -> None:
        self.failed_attempts += 1
        repeated = (state, error) == self._last_failure  # log each new fault once, loudly
        self._last_failure = (state, error)
        self.last_error = error
        self.last_error_at = utc_now_iso()
        self._set_state(state)
        hint = {
            LinkState.AUTH_FAILED: "check mqtt.username and the password source",
            LinkState.TLS_FAILED: "check mqtt.tls.ca_file against the broker's certificate",
            LinkState.UNREACHABLE: "broker down or unreachable; messages stay queued",
            LinkState.CONFIG_ERROR: "fix config.yaml or the secret source",
            LinkState.DISCONNECTED: "connection lost; messages stay queued",
        }.get(state, "")
        log.log(
            logging.DEBUG if repeated else logging.WARNING,
            "mqtt %s:%d %s: %s (%s; outbox depth %d)",
            self.config.host,
            self.config.port,
            state,
            error,
            hint,
            self.outbox.depth,
        )

    def _client_for_session(self) -> aiomqtt.Client:
        cfg = self.config
        password = cfg.password.resolve().get_secret_value() if cfg.password else None
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=self.identity.appliance_id,
            username=cfg.username,
            password=password,
            will=aiomqtt.Will(self.topics.status, self._status("offline"), qos=1, retain=True),
            clean_session=True,
            keepalive=cfg.keepalive_s,
            tls_context=tls_context(cfg.tls) if cfg.tls else None,
            max_inflight_messages=cfg.outbox.max_inflight,
            timeout=max(10.0, cfg.keepalive_s),
            logger=logging.getLogger("edgecall.mqtt.paho"),
            # Several publishes are in flight at once: without this, Nagle's algorithm
            # holds small ones back for the peer's delayed ACK (tens of ms each).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # A full in-flight window is normal here, not a reason for aiomqtt to warn.
        client.pending_calls_threshold = cfg.outbox.max_inflight + 10
        return client

    async def _session(self) -> None:
        client = self._client_for_session()
        async with client:
            self._client = client
            self.connections += 1
            self.failed_attempts = 0
            self.connected_since = utc_now_iso()
            log.info(
                "mqtt connected to %s:%d as %s (outbox depth %d)",
                self.config.host,
                self.config.port,
                self.identity.appliance_id,
                self.outbox.depth,
            )
            await client.publish(self.topics.status, self._status("online"), qos=1, retain=True)
            await client.subscribe(self.topics.commands, qos=1)
            self._set_state(LinkState.CONNECTED)  # only now can commands arrive
            self._last_failure = None
            drain = asyncio.create_task(self._drain(client), name="mqtt-drain")
            tasks = [
                drain,
                asyncio.create_task(self._listen(client), name="mqtt-commands"),
                asyncio.create_task(self._stats_loop(client), name="mqtt-stats"),
            ]
            stop = asyncio.create_task(self._stop.wait(), name="mqtt-stop")
            try:
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                # Clean stop: give the outbox a moment to drain, then retained 'stopped'.
                self._set_state(LinkState.STOPPING)
                deadline = time.monotonic() + STOP_DRAIN_S
                while self.outbox.depth and time.monotonic() < deadline and not drain.done():
                    await asyncio.sleep(0.05)
            finally:
                for task in [*tasks, stop]:
                    task.cancel()
                await asyncio.gather(*tasks, stop, return_exceptions=True)
            await client.publish(self.topics.status, self._status("stopped"), qos=1, retain=True)
            log.info("mqtt stopped cleanly (outbox depth %d left on disk)", self.outbox.depth)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Publish queued messages oldest first, up to max_inflight awaiting PUBACK.

        Publishes leave in queue order on one TCP connection and the broker keeps
        that order, so with QoS 1 subscribers see first deliveries in order. After
        a reconnect the drain restarts at the oldest unacknowledged message, so a
        message may arrive twice (same message_id) but never after a later one
        unless it was already delivered before.
        """
        window = self.config.outbox.max_inflight
        cursor = 0
        generation = self.outbox.generation
        inflight: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                if self.outbox.generation != generation:  # file replaced: start over
                    generation, cursor = self.outbox.generation, 0
                self._wake.clear()
                batch: list[Message] = []
                if len(inflight) < window:
                    batch = await self.outbox.peek(cursor, window - len(inflight))
                for msg in batch:
                    inflight[msg.seq] = asyncio.create_task(
                        client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
                    )
                    cursor = msg.seq
                if not inflight:
                    try:
                        await asyncio.wait_for(self._wake.wait(), SPILL_RETRY_S)
                    except TimeoutError:  # idle: a good moment to retry a full disk
                        await self.outbox.retry_spill()
                    continue
                waiters = list(inflight.values())
                if not batch or len(inflight) >= window:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(0)
                acked = []
                for seq, task in list(inflight.items()):
                    if not task.done():
                        continue
                    del inflight[seq]
                    task.result()  # a failed publish ends the session; the message stays queued
                    acked.append(seq)
                if acked:
                    await self.outbox.ack(acked)
                    self.published += len(acked)
        finally:
            for task in inflight.values():
                task.cancel()
            await asyncio.gather(*inflight.values(), return_exceptions=True)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            kind, name = self.topics.classify(str(message.topic))
            if kind != "command" or name is None:
                continue
            payload = payload_bytes(message)
            task = asyncio.create_task(self._command(name, payload, bool(message.retain)))
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    async def _command(self, name: str, payload: bytes, retained: bool) -> None:
        reply = await self.commands.handle(name, payload, retained=retained)
        client = self._client
        if client is None:
            log.warning("reply to %s %s lost: not connected", name, reply.get("request_id"))
            return
        body = envelope(self.identity, REPLY_SCHEMA, reply)
        try:
            await client.publish(self.topics.reply(name), encode(body), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("reply to %s %s lost: %s", name, reply.get("request_id"), exc)

    async def _stats_loop(self, client: aiomqtt.Client) -> None:
        while True:
            body = envelope(self.identity, STATS_SCHEMA, self.stats())
            await client.publish(self.topics.stats, encode(body), qos=0)
            await asyncio.sleep(self.config.stats_interval_s)
