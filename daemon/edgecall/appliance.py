"""`edgecall run`: the daemon a branch installs.

Wires the pieces together: the MQTT link and its outbox, the SIP extension, the
per-call controllers (quality, analysis, rules, actions), the dial queue and the
SMS route. Each long-running part is a supervised asyncio task with its own
restart loop; systemd hears READY=1 once the config is loaded and the services
are started (degraded if the PBX or the broker is unreachable), STATUS= lines,
and WATCHDOG=1 only while the event loop and the SIP thread are alive.

Signals: SIGHUP reloads config.yaml (an invalid file is logged, published and
ignored); SIGTERM stops taking calls, ends active calls with an outcome,
flushes the outbox, unregisters and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import re
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edgecall import logs
from edgecall.calls import CallController, CallServices
from edgecall.campaign_queue import CampaignQueue, Entry
from edgecall.config.dialing import DialingConfig
from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig
from edgecall.customers import ListFileError, lines, read_list
from edgecall.dialer import (
    DIAL_SKIPPED_SCHEMA,
    DIAL_SKIPPED_SUBTOPIC,
    DIALS_FILE,
    DialItem,
    DialQueue,
    skipped_report,
)
from edgecall.dnc import DncCommands, DoNotCallList
from edgecall.history import History, HistoryError, RecordingPublisher
from edgecall.inference.analyzer import InferenceAnalyzer
from edgecall.inference.settings import InferenceConfig
from edgecall.inference.worker import InferenceClient, WorkerSettings
from edgecall.learning import Learning
from edgecall.messages import Identity, envelope
from edgecall.mqtt.commands import CommandError, CommandRequest
from edgecall.mqtt.link import MqttLink
from edgecall.mqtt.outbox import Outbox
from edgecall.mqtt.site_work import WORK_ITEM_SCHEMA, Held, SiteWork, WorkItem
from edgecall.privacy import forget
from edgecall.rules.pacing import Window, call_at, windows
from edgecall.rules.session import Customer, Lexicons
from edgecall.sdnotify import Notifier, watchdog_interval_s
from edgecall.speech.cache import PromptCache
from edgecall.speech.speaker import TTS_MODEL, TTS_REGISTRY, Speaker
from edgecall.supervisor import Supervisor
from edgecall.telephony import events as tev
from edgecall.telephony.service import Telephony, TelephonyError
from edgecall.trunk.modem import Modem, ModemUnavailable, SignalPoller
from edgecall.trunk.sms import SmsSender, build_route

log = logging.getLogger("edgecall")

CONFIG_REPORT_SCHEMA = "edgecall.config-report/1"
# Sections that only take effect after a restart: the SIP stack, the broker session, the
# inference workers, the modem and SMS route. Rules, lexicons and scripts apply at once.
RESTART_SECTIONS = ("appliance", "sip", "mqtt", "storage", "models", "trunk")
# How long shutdown waits for hung-up calls to report their outcome, and for the outbox.
SHUTDOWN_CALLS_S = 10.0
SHUTDOWN_FLUSH_S = 10.0
DIAL_POLL_S = 1.0
HISTORY_PRUNE_S = 3600.0
WORK_REJECTED_SCHEMA = "edgecall.work-rejected/1"  # <prefix>/dials: a site item refused
CAMPAIGN_PROGRESS_SCHEMA = "edgecall.campaign-progress/1"
CAMPAIGNS_SUBTOPIC = "campaigns"  # <prefix>/campaigns: each run's progress
_USER_PART = re.compile(r"sips?:([^@;>]+)")


def caller_number(uri: str) -> str | None:
    """'"Bob" <sip:+8613800000001@pbx>' -> '+8613800000001'."""
    found = _USER_PART.search(uri)
    return found.group(1) if found else None


class _SipMessageSender:
    """SMS route 'sip_message' over the telephony layer."""

    def __init__(self, telephony: Telephony) -> None:
        self._telephony = telephony

    async def send_message(self, uri: str, text: str) -> bool:
        return (await self._telephony.send_message(uri, text)).ok


class Appliance:
    def __init__(self, config_path: Path, cfg: EdgecallConfig, notifier: Notifier) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.notifier = notifier
        self.identity = Identity(cfg.appliance.site_id, cfg.appliance.appliance_id)
        self.supervisor = Supervisor()
        self.calls: dict[str, CallController] = {}
        self._attempts: dict[str, DialItem] = {}  # outbound call id -> the dial item it came from
        self._early: dict[str, list[tev.TelephonyEvent]] = {}  # events before the controller
        self._finishing: set[asyncio.Task] = set()  # calls being torn down
        self._stop = asyncio.Event()
        self._dial_wakeup = asyncio.Event()
        self._accepting = True
        self.site_work: SiteWork | None = None  # with mqtt.site_work on: the site's shared dials
        self.history: History | None = None  # the call history, once opened
        self._warming: asyncio.Task | None = None

    @property
    def base_dir(self) -> Path:
        return self.config_path.resolve().parent

    def _path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    # --- lifecycle -----------------------------------------------------------------

    async def run(self) -> int:
        cfg = self.cfg
        state_dir = self._path(cfg.storage.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = await Outbox.for_config(cfg.mqtt.outbox, state_dir)
        self.link = MqttLink(cfg.mqtt, self.identity, self.outbox, stats_provider=self.stats)
        self.link.register_command("reload-config", self._cmd_reload)
        self.link.register_command("dial", self._cmd_dial)
        self.link.register_command("cancel-redial", self._cmd_cancel_redial)
        self.dials = DialQueue(state_dir / DIALS_FILE)
        self.campaigns = CampaignQueue(state_dir / DIALS_FILE, time.time())
        for action in ("start", "pause", "resume", "stop", "status"):
            self.link.register_command(f"campaign-{action}", self._cmd_campaign)
        self.history = self._open_history(cfg, state_dir)
        self.link.register_command("forget", self._cmd_forget)
        self.link.register_command("call-stats", self._cmd_call_stats)
        self.link.register_command("list-import", self._cmd_list_import)
        self.learning = Learning(
            self.history,
            self.identity,
            self.link,
            config=lambda: self.cfg,
            renew=self._renew_services,
            models_dir=state_dir,
        )
        self.learning.register(self.link)  # intro-revert, variant-restore
        if cfg.mqtt.site_work.enabled:
            self.site_work = self._open_site_work(cfg)
        self.dnc = DoNotCallList(state_dir / cfg.storage.dnc_file)
        DncCommands(self.dnc).register(self.link)  # dnc-add, dnc-remove, dnc-list
        self.telephony = Telephony(cfg.sip, watch_headers=[cfg.trunk.sip_header.header])
        # Speech analysis runs in worker processes: the SIP media threads keep the GIL to
        # themselves. The scene CNN stays here: 0.06 ms a trace (tests/bench/bench_scene.py).
        self.inference = InferenceClient(
            WorkerSettings.from_models_config(cfg.models),
            config=InferenceConfig.from_config(cfg, self.base_dir),
        )
        await self.inference.start()
        # Voices run in processes of their own: a prompt being synthesized never delays
        # a caller's words in the analysis workers, nor the other way round.
        self._models = cfg.models
        self._prompt_cache = self._open_prompt_cache(cfg)
        self.synth = InferenceClient(
            WorkerSettings.from_models_config(cfg.models, workers=cfg.models.tts.workers),
            config=InferenceConfig.from_config(cfg, self.base_dir),
            registry=TTS_REGISTRY,
        )
        await self.synth.start()
        languages = {lang for asr in cfg.models.asr for lang in asr.languages}
        self.analyzer = InferenceAnalyzer(self.inference, languages) if languages else None
        self.modem, self.modem_signal = await self._open_modem(cfg)
        self.sms = SmsSender(
            build_route(
                cfg.trunk,
                modem=self.modem,
                publish=self.link.publish_sms_request,
                identity=self.identity,
                sip_sender=_SipMessageSender(self.telephony),
            ),
            timeout_s=cfg.trunk.sms.timeout_s,
        )
        self.services = self._services(cfg)
        self._warm_prompts()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

        self.supervisor.start("mqtt", self.link.run)
        if self.modem_signal is not None:
            self.supervisor.start("modem-signal", self.modem_signal.run)
        sip_error = None
        try:
            await self.telephony.start()
        except TelephonyError as exc:
            sip_error = str(exc)
            log.error("SIP stack did not start: %s", exc)
        if sip_error is None:
            self.supervisor.start("sip-events", self._dispatch)
            self.supervisor.start("dialer", self._dial_loop)
            if self.site_work is not None:
                self.supervisor.start("site-work", self.site_work.run)
        self.supervisor.start("systemd", self._report_to_systemd)
        if self.history is not None:
            self.supervisor.start("history", self._keep_history)
            self.supervisor.start("reply-training", self.learning.keep_training)
        self.notifier.ready(
            self.status_line() + (f"; SIP failed: {sip_error}" if sip_error else "")
        )
        log.info("edgecall running with %s", self.config_path)
        await self._stop.wait()
        await self.shutdown()
        return 0

    def _open_prompt_cache(self, cfg: EdgecallConfig) -> PromptCache:
        """The prompt cache (clearing pieces a previous run left); a directory that cannot
        be written costs the cache, not the calls: prompts then live in a temporary one."""
        tts = cfg.models.tts
        directory = self._path(tts.cache_dir or cfg.storage.state_dir / "prompt-cache")
        try:
            return PromptCache(directory, tts.cache_max_mb * 1024 * 1024)
        except OSError as exc:
            fallback = Path(tempfile.mkdtemp(prefix="edgecall-prompts-"))
            log.error(
                "prompt cache %s unusable (%s); using %s until restart", directory, exc, fallback
            )
            return PromptCache(fallback, tts.cache_max_mb * 1024 * 1024)

    def _speaker(self, cfg: EdgecallConfig) -> Speaker:
        # The voices and the cache are those the daemon started with (models: restart
        # needed), so calls in progress keep their pieces; the prompts are the new config's.
        return Speaker(
            cfg.model_copy(update={"models": self._models}),
            self.base_dir,
            self.synth,
            self._prompt_cache,
        )

    def _warm_prompts(self) -> None:
        """Make every fixed prompt ready to play, in the background (calls may already come)."""
        speaker = self.services.speaker
        assert isinstance(speaker, Speaker)

        async def warm() -> None:
            for language in speaker.cfg.models.tts.voices:
                result = await self.synth.call(
                    TTS_MODEL, "voices", {"language": language}, timeout=120.0
                )
                for voice in result.value if result.ok else [{"error": result.reason}]:
                    if "error" in voice:
                        log.error("%s voice: %s", language, voice["error"])
                    else:
                        log.info("%s voice %s ready", language, voice["voice"])
            counts = await speaker.warm()
            log.info("prompts ready: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))

        if self._warming is not None:
            self._warming.cancel()
        self._warming = asyncio.create_task(warm(), name="warm-prompts")

    def _services(self, cfg: EdgecallConfig) -> CallServices:
        variants = self.learning.variant_source(cfg)
        cfg = self.learning.prompts(cfg)
        return CallServices(
            cfg=cfg,
            lexicons=Lexicons(cfg),
            identity=self.identity,
            telephony=self.telephony,
            publisher=RecordingPublisher(self.history, self.link) if self.history else self.link,
            analyzer=self.analyzer,
            speaker=self._speaker(cfg),
            sms=self.sms,
            dnc=self.dnc,
            modem_signal=self.modem_signal,
            on_outcome=self._schedule_redial,
            classifier=self._scene_classifier(cfg),
            variants=variants,
            replies=self.learning.reply_chooser(cfg),
        )

    async def _open_modem(self, cfg: EdgecallConfig) -> tuple[Modem | None, SignalPoller | None]:
        """The trunk modem, shared by signal polling and SMS; an absent port is retried."""
        if cfg.trunk.modem is None:
            return None, None
        modem = Modem(cfg.trunk.modem)
        try:
            await modem.open()
        except ModemUnavailable as exc:
            log.error("modem not available yet (retried while running): %s", exc)
        poller = None
        if "modem" in cfg.trunk.sources:
            poller = SignalPoller(modem, cfg.trunk.sample_interval_s)
        return modem, poller

    def _scene_classifier(self, cfg: EdgecallConfig) -> Any:
        if cfg.models.scene is None:
            return None
        from edgecall.inference.manifest import ModelFileError
        from edgecall.inference.scene import CnnSceneClassifier

        path = self._path(cfg.models.dir) / cfg.models.scene
        try:
            return CnnSceneClassifier(path, threads=cfg.models.threads)
        except (ModelFileError, OSError, ValueError) as exc:
            log.error("scene model unusable, redials use the default delay: %s", exc)
            return None

    async def shutdown(self) -> None:
        self.notifier.stopping("stopping: ending calls")
        self._accepting = False
        log.info("stopping: %d active calls", len(self.calls))
        for call_id in list(self.calls):
            with contextlib.suppress(Exception):
                await self.telephony.hangup(call_id, "service stopping")
        deadline = time.monotonic() + SHUTDOWN_CALLS_S
        while self.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for call_id, controller in list(self.calls.items()):
            await controller.abort("appliance stopped before the call ended")
            self.calls.pop(call_id, None)
        await self.supervisor.stop("dialer")
        if self.site_work is not None:  # hands what it holds back to the site's other boxes
            self.site_work.stop()
            if not await self.supervisor.join("site-work", SHUTDOWN_FLUSH_S):
                log.warning("site work did not stop in time; its items wait for a takeover")
        await self.supervisor.stop("sip-events")
        await self.telephony.stop()  # unregisters
        self.notifier.stopping("stopping: flushing outbox")
        deadline = time.monotonic() + SHUTDOWN_FLUSH_S
        while self.outbox.depth and self.link.state == "connected" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.link.stop()  # publishes the retained 'stopped' status, then returns
        if not await self.supervisor.join("mqtt", SHUTDOWN_FLUSH_S):
            log.warning("MQTT link did not stop in time; 'stopped' status may be missing")
        await self.supervisor.stop()
        if self._warming is not None:
            self._warming.cancel()
        await self.inference.close()
        await self.synth.close()
        if self.modem is not None:
            self.modem.close()
        await self.outbox.close()
        self.dials.close()
        self.campaigns.close()
        self.dnc.close()
        if self.history is not None:
            self.history.close()
        log.info("stopped; %d messages left in the outbox for next time", self.outbox.depth)

    # --- SIP events ------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            event = await self.telephony.events.get()
            try:
                await self._handle(event)
            except Exception:
                log.exception("handling %s failed", type(event).__name__)

    async def _handle(self, ev: tev.TelephonyEvent) -> None:
        if isinstance(ev, tev.IncomingCall):
            self._incoming(ev)
            return
        call_id = getattr(ev, "call_id", None)
        if call_id is None:
            if isinstance(ev, tev.RegistrationChanged):
                log.info("registration: %s %s", ev.code, ev.reason)
            return
        controller = self.calls.get(call_id)
        if controller is None:
            self._early.setdefault(call_id, []).append(ev)  # originate() has not returned yet
            return
        await self._to_controller(controller, ev)

    async def _to_controller(self, controller: CallController, ev: tev.TelephonyEvent) -> None:
        if isinstance(ev, tev.CallStateChanged):
            if ev.state == "confirmed":
                controller.on_confirmed()
            elif ev.state == "disconnected":
                # Teardown (last words, SMS result) can take seconds: never hold up the
                # other calls' events for it.
                never = ev.outcome in ("busy", "no_answer", "rejected", "failed")
                task = asyncio.create_task(
                    self._finish_call(
                        controller, ev.outcome if never else None, f"{ev.code} {ev.reason}"
                    )
                )
                self._finishing.add(task)
                task.add_done_callback(self._finishing.discard)
        elif isinstance(ev, tev.SipHeaderValue):
            controller.on_sip_header(ev.value)
        elif isinstance(ev, tev.QualitySample):
            controller.on_rtp_stats(ev.loss_pct, ev.jitter_ms, ev.discard_pct)
        elif isinstance(ev, tev.DtmfReceived):
            controller.on_dtmf(ev.digit)

    def _incoming(self, ev: tev.IncomingCall) -> None:
        """Every inbound call gets a controller, so even a refused one has an outcome: the
        telephony layer follows a refusal with a 'disconnected' event (busy/rejected)."""
        rules = self.cfg.sip.auto_answer
        rule = rules[ev.rule_index] if ev.rule_index is not None else None
        self._new_call(
            ev.call_id,
            "inbound",
            caller_number(ev.remote_uri),
            campaign=rule.campaign if rule else None,
            language=rule.language if rule else None,
        )
        if not self._accepting and not ev.refused_busy:
            asyncio.ensure_future(self.telephony.reject(ev.call_id, 480))

    def _new_call(
        self,
        call_id: str,
        direction: str,
        remote: str | None,
        *,
        campaign: str | None = None,
        language: str | None = None,
        ref: str | None = None,
        customer: Customer | None = None,
    ) -> CallController:
        controller = CallController(
            self.services,
            call_id=call_id,
            direction=direction,  # type: ignore[arg-type]
            remote=remote,
            campaign=campaign,
            language=language,
            ref=ref,
            customer=customer,
        )
        self.calls[call_id] = controller
        controller.start()
        return controller

    def _schedule_redial(self, controller: CallController, outcome: dict[str, Any]) -> None:
        """Runs before the outcome is published: a redial head office hears of is queued,
        and a campaign's number has its next attempt or its final state (its redial is
        the campaign's next attempt, so the campaign's calling hours apply to it)."""
        if self._campaign_outcome(controller.call_id, outcome):
            return
        item = self._attempts.get(controller.call_id)
        if self.dials.schedule_redial(
            outcome,
            attempt=item.attempt if item else 1,
            max_attempts=self.cfg.rules.redial.max_attempts,
        ):
            log.info("redial of %s scheduled for %s", outcome.get("number"), outcome.get("due"))

    async def _finish_call(
        self, controller: CallController, not_connected: str | None, detail: str
    ) -> None:
        try:
            await controller.on_disconnected(not_connected=not_connected, detail=detail)
        except Exception:
            log.exception("ending call %s failed", controller.call_id)
            await controller.abort("internal error while ending the call")
        finally:
            self._ended(controller)
        session = controller.session
        await self.learning.after_call(session.campaign_name, session.group, session.outcome or {})

    def _ended(self, controller: CallController) -> None:
        self.calls.pop(controller.call_id, None)
        self._attempts.pop(controller.call_id, None)
        self._dial_wakeup.set()

    # --- learning from the history ---------------------------------------------------

    def _renew_services(self) -> None:
        """New calls use what was just learned (calls up keep theirs); its prompts are made
        ready, so the first caller to hear a changed one does not wait for its synthesis."""
        self.services = self._services(self.cfg)
        self._warm_prompts()

    # --- outbound ----------------------------------------------------------------------

    async def _dial_loop(self) -> None:
        while True:
            if self._accepting and self.telephony.registered:
                await self._dial_due(time.time())
            self._dial_wakeup.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dial_wakeup.wait(), DIAL_POLL_S)

    def _room(self) -> int:
        """Calls this box could place right now."""
        if not (self._accepting and self.telephony.registered):
            return 0
        return self.cfg.sip.max_concurrent_calls - len(self.calls)

    async def _dial_due(self, now: float) -> None:
        """Place the due calls there is capacity for; a number on the do-not-call list is
        never dialled: its item is reported to head office (<prefix>/dials), then dropped.
        With site work on, due redials go to the site's queue and calls come from it too."""
        if self.site_work is not None and self.site_work.connected:
            # a message on the site's queue before any box is in its group is dropped by
            # the broker: due redials wait here until this box has joined it
            await self._share_due_redials(now)
        kind = "dial" if self.site_work is not None else None
        ready, barred = self.dials.due_split(now, self._room(), self.dnc.contains, kind)
        for item in barred:
            await self._report_barred(item)
            self.dials.remove(item.id)
        for item in ready:
            self.dials.remove(item.id)
            await self._originate(item)
        await self._dial_campaigns(now)
        while self.site_work is not None and self._room() > 0:
            held = self.site_work.take()
            if held is None:
                break
            await self._place_site_item(held, now)

    async def _report_barred(self, item: DialItem) -> None:
        report = skipped_report(item, self.dnc.get(item.number))
        await self.link.publish_other(
            DIAL_SKIPPED_SUBTOPIC, envelope(self.identity, DIAL_SKIPPED_SCHEMA, report)
        )
        log.info("%s %s not dialled: on the do-not-call list", item.kind, item.number)

    async def _share_due_redials(self, now: float) -> None:
        """Due redials go to the site's queue (through the outbox: none lost offline)."""
        assert self.site_work is not None
        ready, barred = self.dials.due_split(now, 100, self.dnc.contains, "redial")
        for item in barred:
            await self._report_barred(item)
            self.dials.remove(item.id)
        for item in ready:
            shared = WorkItem.redial(item)
            body = envelope(self.identity, WORK_ITEM_SCHEMA, shared.fields())
            await self.link.publish_to(self.site_work.topics.dial, body, "request")
            self.dials.remove(item.id)

    async def _place_site_item(self, held: Held, now: float) -> None:
        assert self.site_work is not None
        work = held.item
        item = work.dial_item(now)
        if self.dnc.contains(item.number):
            await self._report_barred(item)
        else:
            self.dials.mark_placed(work.item_id)
            await self._originate(item)
        self.site_work.done(held)

    def _open_site_work(self, cfg: EdgecallConfig) -> SiteWork:
        async def rejected(payload: bytes, error: str) -> None:
            body = {
                "reason": "invalid_item",
                "error": error,
                "payload": payload[:1000].decode("utf-8", "replace"),
            }
            await self.link.publish_other(
                DIAL_SKIPPED_SUBTOPIC, envelope(self.identity, WORK_REJECTED_SCHEMA, body)
            )

        return SiteWork(
            cfg.mqtt,
            self.identity,
            window=cfg.sip.max_concurrent_calls,
            room=self._room,
            arrived=self._dial_wakeup.set,
            placed_before=self.dials.placed_before,
            rejected=rejected,
        )

    async def _originate(
        self, item: DialItem, placed: Callable[[str], None] | None = None
    ) -> str | None:
        """Place the call (`placed` learns its id before any of its events are handled);
        None when the SIP stack could not even send it."""
        try:
            call_id = await self.telephony.originate(item.number)  # adds sip.dial_prefix
        except TelephonyError as exc:
            log.error("could not dial %s: %s", item.number, exc)
            return None
        if placed is not None:
            placed(call_id)
        self._attempts[call_id] = item
        controller = self._new_call(
            call_id,
            "outbound",
            item.number,
            campaign=item.campaign,
            language=item.language,
            ref=item.ref,
            customer=Customer(item.customer_id, item.group, item.interests),
        )
        for ev in self._early.pop(call_id, []):
            await self._to_controller(controller, ev)
        return call_id

    # --- campaigns over customer lists (issue 18 part 4) ------------------------------

    async def _dial_campaigns(self, now: float) -> None:
        """Each running campaign's due numbers, within their calling hours and the
        campaign's own limit on calls at once; a number on the do-not-call list is never
        called (its final state says so)."""
        for name in self.campaigns.running():
            campaign = self.cfg.campaigns.get(name)
            if campaign is None:
                continue  # removed from config.yaml: its run waits
            rules = campaign.dialing
            limit = self._room()
            if rules.max_concurrent_calls is not None:
                limit = min(limit, rules.max_concurrent_calls - self.campaigns.active(name))
            changed, placed = False, 0
            while placed < limit:  # numbers that wait or are barred leave the due set
                batch = self.campaigns.due(name, now, limit - placed)
                if not batch:
                    break
                for entry in batch:
                    dialled = await self._dial_entry(entry, rules, now)
                    changed = changed or dialled is not False
                    placed += dialled is True
            if changed:
                await self._publish_progress(name)

    async def _dial_entry(self, entry: Entry, rules: DialingConfig, now: float) -> bool | None:
        """Call one due number of a campaign if its hours allow: True when it was dialled,
        None when it got a final state or a retry (barred, or the call could not be
        placed), False when it waits (moved into its hours or its preferred slot)."""
        named = entry.time_zone or rules.time_zone
        zone = ZoneInfo(named) if named else self.cfg.appliance.zone()
        if self.dnc.contains(entry.dial):
            self.campaigns.barred(entry.id)
            return None
        preferred = self._slot_windows(entry.slots)
        when = call_at(now, zone, rules, first=entry.attempts == 0, preferred=preferred)
        if when > now:
            self.campaigns.reschedule(entry.id, when)
            return False
        group, interests = await self.learning.customer_group(
            entry.campaign, entry.number, entry.group
        )
        item = DialItem(
            0,
            entry.dial,
            now,
            "dial",
            None,
            entry.campaign,
            entry.language,
            None,
            entry.attempts + 1,
            entry.customer_id,
            group,
            interests,
        )
        placed = await self._originate(item, lambda cid: self.campaigns.dialling(entry.id, cid))
        if placed is None:
            self.campaigns.unplaced(entry.id, now, rules)
            return None
        return True

    def _slot_windows(self, names: list[str]) -> list[Window]:
        """The customer's preferred answer slots as daily windows (assist.time_slots)."""
        slots = {s.name: f"{s.start}-{s.end}" for s in self.cfg.assist.time_slots}
        return windows([slots[n] for n in names if n in slots])

    def _campaign_outcome(
        self, call_id: str, outcome: dict[str, Any], now: float | None = None
    ) -> bool:
        """True when the call was one of a campaign run's (its queue took the outcome)."""
        now = time.time() if now is None else now
        name = self.campaigns.finished(call_id, outcome, now, self._dialing(outcome))
        if name is None:
            return False
        task = asyncio.ensure_future(self._publish_progress(name))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return True

    def _dialing(self, outcome: dict[str, Any]) -> DialingConfig:
        campaign = self.cfg.campaigns.get(outcome.get("campaign") or "")
        return campaign.dialing if campaign is not None else DialingConfig()

    async def _publish_progress(self, name: str) -> None:
        progress = self.campaigns.progress(name)
        if progress is not None:
            body = envelope(self.identity, CAMPAIGN_PROGRESS_SCHEMA, progress)
            await self.link.publish_other(CAMPAIGNS_SUBTOPIC, body)

    async def _cmd_campaign(self, request: CommandRequest) -> dict[str, Any]:
        """campaign-start, -pause, -resume, -stop and -status."""
        action = request.name.removeprefix("campaign-")
        name = request.args["campaign"]
        if name not in self.cfg.campaigns:
            raise CommandError("unknown_campaign", f"no campaign {name!r} in config.yaml")
        now = time.time()
        if action == "start":
            list_name = request.args.get("list", "default")
            customers = self.learning.require_history().customers_of(name, list_name)
            if not customers:
                raise CommandError("empty_list", f"list {list_name!r} of {name!r} has no customers")
            added = self.campaigns.start(name, list_name, customers, now)
            log.info("campaign %s started on list %s: %d numbers added", name, list_name, added)
            self._dial_wakeup.set()
        elif action != "status":
            state = {"pause": "paused", "resume": "running", "stop": "stopped"}[action]
            if not self.campaigns.set_state(name, state, now):  # type: ignore[arg-type]
                raise CommandError("not_started", f"campaign {name!r} was never started")
            log.info("campaign %s %s by head office", name, state)
            self._dial_wakeup.set()
        await self._publish_progress(name)
        return self.campaigns.progress(name) or {"campaign": name, "state": None}

    # --- commands and reload ---------------------------------------------------------------

    async def _cmd_dial(self, request: CommandRequest) -> dict[str, Any]:
        args = request.args
        campaign = args.get("campaign")
        if campaign is not None and campaign not in self.cfg.campaigns:
            raise CommandError("unknown_campaign", f"no campaign {campaign!r} in config.yaml")
        items, skipped = [], []
        for n in args["numbers"]:
            if self.dnc.contains(n["number"]):
                skipped.append(
                    {"number": n["number"], "ref": n.get("ref"), "reason": "do_not_call"}
                )
                continue
            language = n.get("language", args.get("language"))
            items.append({**n, "campaign": campaign, "language": language})
        queued = self.dials.add_many(items, time.time())
        self._dial_wakeup.set()
        return {"queued": queued, "skipped": skipped, "waiting": self.dials.counts()}

    async def _cmd_forget(self, request: CommandRequest) -> dict[str, Any]:
        try:
            erased = await forget(
                request.args["number"], history=self.history, dials=self.dials, outbox=self.outbox
            )
        except ValueError as exc:
            raise CommandError("bad_number", str(exc)) from None
        log.info("forgot a number on head office's request: %s", erased)
        return erased

    async def _cmd_list_import(self, request: CommandRequest) -> dict[str, Any]:
        args = request.args
        campaign, list_name = args["campaign"], args.get("list", "default")
        if campaign not in self.cfg.campaigns:
            raise CommandError("unknown_campaign", f"no campaign {campaign!r} in config.yaml")
        history = self.learning.require_history()
        try:
            report = read_list(
                lines(args["csv"]),
                lambda batch: history.store_customers(batch, campaign, list_name),
            )
        except ListFileError as exc:
            raise CommandError("bad_list", str(exc)) from None
        lists = history.customer_lists(campaign).get(campaign, {})
        log.info(
            "list %s of %s, part %s/%s: %d new, %d updated, %d skipped",
            list_name,
            campaign,
            args.get("part", 1),
            args.get("parts", 1),
            report.imported,
            report.updated,
            len(report.errors),
        )
        return {
            "part": args.get("part", 1),
            "parts": args.get("parts", 1),
            **report.to_json(),
            "lists": lists,
        }

    async def _cmd_call_stats(self, request: CommandRequest) -> dict[str, Any]:
        return self.learning.require_history().summary(request.args.get("campaign"))

    def _open_history(self, cfg: EdgecallConfig, state_dir: Path) -> History | None:
        """The call history; without it calls go on, unrecorded (logged, in the stats)."""
        try:
            return History(
                state_dir / cfg.storage.history_file,
                keep_days=cfg.storage.history_days,
                slots=cfg.assist.time_slots,
            )
        except (HistoryError, OSError, sqlite3.Error) as exc:
            log.error("call history unavailable, calls are not recorded: %s", exc)
            return None

    async def _keep_history(self) -> None:
        """Delete calls past their retention, at start and hourly."""
        assert self.history is not None
        while True:
            try:
                self.history.prune()
            except sqlite3.Error as exc:
                log.error("call history: pruning failed: %s", exc)
            await asyncio.sleep(HISTORY_PRUNE_S)

    async def _cmd_cancel_redial(self, request: CommandRequest) -> dict[str, Any]:
        removed = self.dials.cancel_redials(**request.args)
        return {"cancelled": removed}

    async def _cmd_reload(self, request: CommandRequest) -> dict[str, Any]:
        report = await self.reload()
        if not report["ok"]:
            raise CommandError("invalid_config", "; ".join(report["errors"][:20]))
        return report

    async def reload(self) -> dict[str, Any]:
        """Re-read config.yaml; a bad file is rejected, logged and published, nothing changes."""
        self.notifier.reloading()
        try:
            new = load_model(self.config_path, EdgecallConfig)
        except ConfigError as exc:
            errors = [str(i) for i in exc.issues]
            for line in errors:
                log.error("config rejected: %s", line)
            report = {
                "ok": False,
                "path": str(self.config_path),
                "errors": errors,
                "restart_needed": [],
            }
        else:
            restart = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(self.cfg, s)]
            self.cfg = new
            self.services = self._services(new)  # calls in progress keep their rules
            self._warm_prompts()  # new or changed prompt texts and recordings
            logs.setup(new.logging.level, new.logging.format)
            report = {
                "ok": True,
                "path": str(self.config_path),
                "errors": [],
                "restart_needed": restart,
            }
            log.info("config reloaded%s", f"; restart needed for {restart}" if restart else "")
        await self.link.publish_other(
            "config", envelope(self.identity, CONFIG_REPORT_SCHEMA, report)
        )
        self.notifier.ready(self.status_line())
        return report

    # --- health ------------------------------------------------------------------------

    def status_line(self) -> str:
        sip = "registered" if self.telephony.registered else "not registered"
        mqtt = "mqtt ok" if self.link.state == "connected" else f"mqtt {self.link.state}"
        return f"{sip}; {len(self.calls)} calls; {mqtt}; outbox {self.outbox.depth}"

    def healthy(self) -> bool:
        return self.telephony.running

    async def _report_to_systemd(self) -> None:
        interval = watchdog_interval_s()
        period = min(interval or 5.0, 5.0)
        while True:
            if self.healthy():
                self.notifier.watchdog()
            self.notifier.status(self.status_line())
            await asyncio.sleep(period)

    def stats(self) -> dict[str, Any]:
        """The appliance's part of <prefix>/stats (schemas/stats.json)."""
        return {
            "active_calls": len(self.calls),
            "registration": "registered" if self.telephony.registered else "not registered",
            "signal": {
                call_id: c.last_sample for call_id, c in self.calls.items() if c.last_sample
            },
            "model_latency_ms": self.inference.model_latency_ms(),
            "inference": self.inference.stats(),
            "dial_queue": self.dials.counts(),
            "history": self.history.stats() if self.history is not None else None,
            "replies": self.learning.stats(),
            **({"site_work": self.site_work.stats()} if self.site_work is not None else {}),
            "services": {
                name: {"running": s.running, "restarts": s.restarts, "last_error": s.last_error}
                for name, s in self.supervisor.states.items()
            },
        }


def run(config_path: Path) -> int:
    """Entry point of `edgecall run`: exit 2 on a bad config, 0 after a clean stop."""
    try:
        cfg = load_model(config_path, EdgecallConfig)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, flush=True)
        return 2
    logs.setup(cfg.logging.level, cfg.logging.format)
    # `kill -USR1 <pid>` writes every thread's stack to the log: how a technician (or a
    # test) shows where a stuck daemon is stuck. systemd's watchdog restarts it anyway.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # a crash in native code (pjsua2, onnxruntime) leaves the Python stacks in the log
    faulthandler.enable(all_threads=True)
    notifier = Notifier()
    try:
        return asyncio.run(Appliance(config_path, cfg, notifier).run())
    finally:
        notifier.close()
