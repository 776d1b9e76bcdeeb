"""Dial work shared by the boxes of one site, through the head-office broker.

Head office publishes one message per number on `<topic>/dial` (schemas/work-item.json).
Every box of the site subscribes to it in one MQTT 5 shared-subscription group, so the
broker gives each item to one box. A box acknowledges an item only once the call is
placed: what it has not acknowledged is still the broker's. Its Receive Maximum (its
call limit) caps how many items the broker gives it at once, and an item it holds for
`hand_back_after_s` without room to place it (its calls are all busy, or SIP is down)
goes back to the site's queue, for a box with room. Every box stays in the group even
when full: a message with no subscriber at all would be dropped.

Brokers differ in what they do with the unacknowledged items of a box that vanishes.
EMQX and HiveMQ give them to another member. Mosquitto (2.0, as on Debian 12) keeps them
in the vanished box's session, and goes on handing that session its share of new items.
So a box's work session is persistent and carries a Will, delayed by
`takeover_after_s`, on `<topic>/orphaned`:
- A box that restarts within the delay reconnects to its session, gets its items back,
  and the broker drops the Will.
- Otherwise the broker publishes the Will. One peer gets it (a shared subscription
  again), takes the session over, publishes its items back on `<topic>/dial` and ends
  the session, so the broker stops handing it work.
A box that stops cleanly does the same with its own session before it goes.

Redials and callbacks rejoin the shared queue when they come due (the appliance
publishes them through its outbox), so whichever box has room places them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
from jsonschema import Draft202012Validator
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgecall.config.mqtt import MqttConfig
from edgecall.dialer import DialItem, Kind
from edgecall.messages import Identity, encode
from edgecall.mqtt.commands import load_schema
from edgecall.mqtt.link import backoff_delay, payload_bytes, tls_context

log = logging.getLogger("edgecall.mqtt.site_work")

WORK_ITEM_SCHEMA = "edgecall.work-item/1"
ORPHANED_SCHEMA = "edgecall.work-orphaned/1"
QUIET_S = 1.5  # a session being emptied is done once nothing more arrived for this long
TAKEOVER_TRIES = 3
TAKEOVER_RETRY_S = 10.0  # after TAKEOVER_TRIES failures, the notice goes round again
_VALIDATOR = Draft202012Validator(load_schema("work-item.json"))


class WorkItemError(ValueError):
    """A message on the work topic that is not a work item."""


@dataclass(frozen=True)
class WorkItem:
    item_id: str
    number: str
    campaign: str | None = None
    language: str | None = None
    ref: str | None = None
    attempt: int = 1
    origin_call_id: str | None = None
    customer_id: str | None = None
    group: str | None = None

    @classmethod
    def redial(cls, item: DialItem) -> WorkItem:
        """A due redial of this box's queue, for the site's queue."""
        return cls(
            f"redial-{item.origin_call_id}-{item.attempt}",
            item.number,
            item.campaign,
            item.language,
            item.ref,
            item.attempt,
            item.origin_call_id,
            item.customer_id,
            item.group,
        )

    def dial_item(self, due: float) -> DialItem:
        """This item as the dialer places it (id 0: it is in no local queue)."""
        kind: Kind = "redial" if self.attempt > 1 else "dial"
        return DialItem(
            0,
            self.number,
            due,
            kind,
            self.ref,
            self.campaign,
            self.language,
            self.origin_call_id,
            self.attempt,
            self.customer_id,
            self.group,
        )

    def body(self) -> dict[str, Any]:
        """The message that publishes this item, as head office sends it (no envelope)."""
        return {"schema": WORK_ITEM_SCHEMA, **self.fields()}

    def fields(self) -> dict[str, Any]:
        """The item's fields, for `edgecall.messages.envelope(..., WORK_ITEM_SCHEMA, ...)`."""
        return {
            "item_id": self.item_id,
            "number": self.number,
            "campaign": self.campaign,
            "language": self.language,
            "ref": self.ref,
            "attempt": self.attempt,
            "origin_call_id": self.origin_call_id,
            "customer_id": self.customer_id,
            "group": self.group,
        }


def parse_item(payload: bytes) -> WorkItem:
    """The item in `payload`; WorkItemError says what is wrong with it."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkItemError(f"not JSON: {exc}") from None
    error = next(iter(sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.path) or "item"
        raise WorkItemError(f"{where}: {error.message}")
    fields = {
        k: data.get(k)
        for k in ("campaign", "language", "ref", "origin_call_id", "customer_id", "group")
    }
    return WorkItem(data["item_id"], data["number"], attempt=data.get("attempt", 1), **fields)


@dataclass(frozen=True)
class SiteTopics:
    """The site's work topics and the group every box joins."""

    base: str
    group: str

    @classmethod
    def for_config(cls, config: MqttConfig, identity: Identity) -> SiteTopics:
        work = config.site_work
        return cls(
            work.topic or f"edgecall/{identity.site_id}/work",
            work.group or f"edgecall-{identity.site_id}",
        )

    @property
    def dial(self) -> str:
        return f"{self.base}/dial"

    @property
    def orphaned(self) -> str:
        return f"{self.base}/orphaned"

    def shared(self, topic: str) -> str:
        return f"$share/{self.group}/{topic}"


def work_session(appliance_id: str) -> str:
    """The MQTT client id of a box's work session (its link uses the plain id)."""
    return f"{appliance_id}-work"


@dataclass(frozen=True)
class Held:
    """An item this box was given and has not acknowledged yet."""

    item: WorkItem
    mid: int
    connection: int  # the connection it came on: an ack is only valid on that one
    since: float  # time.monotonic() when it arrived


class SiteWork:
    """One long-running service (`run`) holding this box's work session.

    The appliance asks `take()` for items when it has room and calls `done()` once
    each is placed or reported skipped; `room()` tells whether it could place one now.
    """

    def __init__(
        self,
        config: MqttConfig,
        identity: Identity,
        *,
        window: int,
        room: Callable[[], int],
        arrived: Callable[[], None],
        placed_before: Callable[[str], bool],
        rejected: Callable[[bytes, str], Awaitable[None]],
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.topics = SiteTopics.for_config(config, identity)
        self.session = work_session(identity.appliance_id)
        self._window = max(1, window)
        self._room = room
        self._arrived = arrived
        self._placed_before = placed_before
        self._rejected = rejected
        self._rng = rng or random.Random()
        self._held: OrderedDict[str, Held] = OrderedDict()
        self._client: aiomqtt.Client | None = None
        self._connection = 0
        self._stop = asyncio.Event()
        self._takeovers: dict[str, asyncio.Task[None]] = {}
        self.connected = False
        self.last_error: str | None = None
        self.received = 0
        self.taken_over = 0
        self.handed_back = 0

    # ------------------------------------------------------------ appliance side

    def take(self) -> Held | None:
        """The oldest item given to this box, or None."""
        while self._held:
            _, held = self._held.popitem(last=False)
            if held.connection == self._connection:
                return held
        return None

    def done(self, held: Held) -> None:
        """The item is placed (or reported skipped): the broker may forget it."""
        client = self._client
        if client is not None and held.connection == self._connection:
            client._client.ack(held.mid, 1)  # noqa: SLF001 (aiomqtt has no manual ack)
        # else: the broker gives it again on the next connection, and placed_before says so

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "waiting": len(self._held),
            "received": self.received,
            "sessions_taken_over": self.taken_over,
            "items_handed_back": self.handed_back,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask `run()` to hand back what this box holds, end its session, and return."""
        self._stop.set()

    async def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                await self._session()
                attempt = 0
            except (aiomqtt.MqttError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("site work session: %s; retrying", exc)
            finally:
                self._client = None
                self.connected = False
                self._held.clear()  # the broker gives them again on the next connection
            if self._stop.is_set():
                break
            delay = backoff_delay(
                attempt, self.config.reconnect_initial_s, self.config.reconnect_max_s, self._rng
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        for task in self._takeovers.values():
            task.cancel()
        await asyncio.gather(*self._takeovers.values(), return_exceptions=True)

    def _client_for(
        self, client_id: str, *, clean_start: bool, expiry_s: int, receive_max: int, will: bool
    ) -> aiomqtt.Client:
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry_s
        props.ReceiveMaximum = receive_max
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=client_id,
            username=cfg.username,
            password=cfg.password.resolve().get_secret_value() if cfg.password else None,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start,
            properties=props,
            will=self._will(client_id) if will else None,
            keepalive=cfg.keepalive_s,
            tls_context=tls_context(cfg.tls) if cfg.tls else None,
            timeout=max(10.0, cfg.keepalive_s),
            logger=logging.getLogger("edgecall.mqtt.paho"),
        )
        client._client.manual_ack_set(True)  # noqa: SLF001 (aiomqtt has no manual ack)
        return client

    def _will(self, client_id: str) -> aiomqtt.Will:
        props = Properties(PacketTypes.WILLMESSAGE)
        props.WillDelayInterval = self.config.site_work.takeover_after_s
        return aiomqtt.Will(self.topics.orphaned, self._notice(client_id), qos=1, properties=props)

    def _notice(self, session: str) -> bytes:
        """The orphan notice of `session` (schemas/work-orphaned.json)."""
        body = {"schema": ORPHANED_SCHEMA, "session": session, "site_id": self.identity.site_id}
        return encode(body)

    async def _session(self) -> None:
        work = self._client_for(
            self.session,
            clean_start=False,  # a box back from a crash gets the items it had
            expiry_s=self.config.site_work.session_expiry_s,
            receive_max=self._window,
            will=True,
        )
        # Orphan notices come on a session that ends with its connection: mosquitto gives
        # a shared group's messages to members that are offline too, and a notice given
        # to the vanished box's own session would never be read.
        watch = self._client_for(
            f"{self.identity.appliance_id}-watch",
            clean_start=True,
            expiry_s=0,
            receive_max=10,
            will=False,
        )
        async with work, watch:
            self._connection += 1
            self._client = work
            self.last_error = None
            await watch.subscribe(self.topics.shared(self.topics.orphaned), qos=1)
            await work.subscribe(self.topics.shared(self.topics.dial), qos=1)
            self.connected = True  # in the group: what this box shares now has a reader
            log.info("site work: in group %s on %s", self.topics.group, self.topics.dial)
            tasks = [
                asyncio.create_task(self._listen(work), name="site-work-listen"),
                asyncio.create_task(self._watch(watch), name="site-work-watch"),
                asyncio.create_task(self._hand_back(work), name="site-work-hand-back"),
            ]
            stop = asyncio.create_task(self._stop.wait())
            try:
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop and task.exception():
                        raise task.exception()  # type: ignore[misc]
            finally:
                for task in [*tasks, stop]:
                    task.cancel()
                await asyncio.gather(*tasks, stop, return_exceptions=True)
            held = list(self._held.values())
            self._held.clear()
            moved = await self._empty(work, held)
            log.info("site work: left the group, %d items handed back", moved)
        await self._end(self.session)

    async def _hand_back(self, client: aiomqtt.Client) -> None:
        """Return items held too long without room to the site's queue."""
        wait = self.config.site_work.hand_back_after_s
        while True:
            await asyncio.sleep(min(1.0, wait / 2))
            now = time.monotonic()
            stale = [h for h in self._held.values() if now - h.since >= wait]
            if not stale or self._room() > 0:
                continue
            for held in stale:
                del self._held[held.item.item_id]
                await client.publish(self.topics.dial, encode(held.item.body()), qos=1)
                client._client.ack(held.mid, 1)  # noqa: SLF001
            self.handed_back += len(stale)
            log.info("site work: no room for %d items in %.0f s: handed back", len(stale), wait)

    async def _watch(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            payload = payload_bytes(msg)
            self._on_orphaned(client, msg.mid, payload)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            payload = payload_bytes(msg)
            self.received += 1
            try:
                item = parse_item(payload)
            except WorkItemError as exc:
                log.error("site work: item refused: %s", exc)
                await self._rejected(payload, str(exc))
                client._client.ack(msg.mid, 1)  # noqa: SLF001
                continue
            if item.item_id in self._held or self._placed_before(item.item_id):
                log.info("site work: item %s again (a redelivery): placed once", item.item_id)
                client._client.ack(msg.mid, 1)  # noqa: SLF001
                continue
            self._held[item.item_id] = Held(item, msg.mid, self._connection, time.monotonic())
            self._arrived()

    # ------------------------------------------------------ sessions of others

    def _on_orphaned(self, client: aiomqtt.Client, mid: int, payload: bytes) -> None:
        try:
            session = json.loads(payload)["session"]
            if not isinstance(session, str) or not session:
                raise ValueError("no session")
        except (ValueError, KeyError, TypeError):
            log.error("site work: unreadable orphan notice %r", payload[:200])
            client._client.ack(mid, 1)  # noqa: SLF001
            return
        if session == self.session or session in self._takeovers:
            client._client.ack(mid, 1)  # noqa: SLF001 (our own old Will, or a repeat)
            return
        task = asyncio.create_task(self._take_over(session, client, mid))
        self._takeovers[session] = task
        task.add_done_callback(lambda _t, s=session: self._takeovers.pop(s, None))

    async def _take_over(self, session: str, watch: aiomqtt.Client, mid: int) -> None:
        """Move a vanished box's items back to the site's queue, then end its session."""
        for attempt in range(TAKEOVER_TRIES):
            try:
                taken = self._client_for(
                    session,
                    clean_start=False,
                    expiry_s=self.config.site_work.session_expiry_s,
                    receive_max=100,
                    will=True,  # if this box dies half-way, another takes over again
                )
                async with taken:
                    moved = await self._empty(taken, [])
                await self._end(session)
                break
            except aiomqtt.MqttError as exc:
                log.warning("site work: taking over %s failed (%s)", session, exc)
                await asyncio.sleep(2.0 * (attempt + 1))
        else:  # give the notice back to the group for a later try, by this box or another
            await asyncio.sleep(TAKEOVER_RETRY_S)
            with contextlib.suppress(Exception):
                await watch.publish(self.topics.orphaned, self._notice(session), qos=1)
                watch._client.ack(mid, 1)  # noqa: SLF001
            return
        self.taken_over += 1
        log.warning(
            "site work: box session %s vanished; %d waiting items back in the site's queue",
            session,
            moved,
        )
        with contextlib.suppress(Exception):  # the watch connection may be gone: no matter
            watch._client.ack(mid, 1)  # noqa: SLF001

    async def _empty(self, client: aiomqtt.Client, held: list[Held]) -> int:
        """Leave the group on `client`'s session and publish everything it holds back to
        the site: `held` (already received) and what the broker still had queued for it."""
        await client.unsubscribe(self.topics.shared(self.topics.dial))
        moved = 0
        for h in held:
            if h.connection == self._connection:
                await client.publish(self.topics.dial, encode(h.item.body()), qos=1)
                client._client.ack(h.mid, 1)  # noqa: SLF001
                moved += 1
        messages = client.messages.__aiter__()
        end = time.monotonic() + QUIET_S
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(anext(messages), left)
            except TimeoutError:
                break
            await client.publish(str(msg.topic), msg.payload, qos=1)
            client._client.ack(msg.mid, 1)  # noqa: SLF001
            moved += 1
            end = time.monotonic() + QUIET_S
        self.handed_back += moved
        return moved

    async def _end(self, session: str) -> None:
        """End `session` at the broker (a clean start discards it), so it gets no work."""
        async with self._client_for(
            session, clean_start=True, expiry_s=0, receive_max=1, will=False
        ):
            pass
