"""What the box learns from its call history and puts in front of new calls (issue 16).

Three loops run after every call, over the history (`edgecall.history`), and each tells
head office on `<prefix>/learning` what changed and why:

- the failure factor that leads the campaign's recent failed calls goes first in the
  product introduction (call-rules section 6, seed 000; `rules.failure_factors`);
- a flow node's prompt variants compete per customer group, and a variant that is
  clearly worse, or below the campaign's `retire` floors, is retired (seed 003 S5;
  the choice itself is `rules.variants.VariantPicker`, per call);
- a customer group with no script of its own gets a product introduction composed from
  its most frequent interests, which then competes with the configured variants for
  that group's calls (seed 003 S5).

Replies learned from the history (seed 002) are the fourth: `keep_training` retrains
the reply model in a child process at low priority (`edgecall.reply_training`) after
`rules.replies.retrain_calls` calls and each night, and new calls rank their candidate
replies with the model it kept (`reply_chooser`).

The decisions are pure functions in `edgecall.rules`; this module reads the history,
calls them, stores what they decided and publishes it. A history that fails costs the
learning, never a call: errors are logged and the configured prompts stay; a reply
model that fails to load or to train leaves the calls with the rules' replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from edgecall.config.root import EdgecallConfig
from edgecall.config.scripts import Campaign, Prompt
from edgecall.history import History
from edgecall.interests import MODEL_FILE as INTEREST_FILE
from edgecall.interests import InterestModel, InterestModelError, top_interest
from edgecall.messages import Identity, envelope
from edgecall.mqtt.commands import CommandError, CommandRequest
from edgecall.reply_model import MODEL_FILE, ReplyModel, ReplyModelError
from edgecall.rules.failure_factors import analyse, evidence, intro_change, promoted_intro
from edgecall.rules.replies import ReplyChooser
from edgecall.rules.session import VariantSource
from edgecall.rules.variants import DEFAULT_GROUP, VariantPicker, retirements

log = logging.getLogger("edgecall.learning")

INTRO_CHANGE_SCHEMA = "edgecall.intro-change/1"
VARIANT_RETIRED_SCHEMA = "edgecall.variant-retired/1"
GROUP_SCRIPT_SCHEMA = "edgecall.group-script/1"
REPLY_MODEL_SCHEMA = "edgecall.reply-model-trained/1"
TRAINING_TIMEOUT_S = 1800.0
INTEREST_GROUP = "likes-"  # a customer group named by a predicted interest: likes-price
LEARNING_SUBTOPIC = "learning"  # <prefix>/learning: what the box learned, with the evidence
INTRO = "product_intro"  # the prompt the failure factors and the group scripts rewrite
GROUP_CALLS_READ = 500  # a group's interests are read from its latest calls


class Publisher(Protocol):
    async def publish_other(self, subtopic: str, message: dict[str, Any]) -> str: ...


def group_prompt(group: str) -> str:
    """The prompt key of a customer group's composed introduction."""
    return f"{INTRO}@{group}"


def intro_nodes(campaign: Campaign) -> list[str]:
    """The flow nodes that say the product introduction."""
    return [name for name, node in campaign.flow.nodes.items() if INTRO in node.say]


class Learning:
    def __init__(
        self,
        history: History | None,
        identity: Identity,
        link: Publisher,
        *,
        config: Callable[[], EdgecallConfig],
        renew: Callable[[], None],
        models_dir: Path | None = None,
    ) -> None:
        self.history = history
        self.identity = identity
        self.link = link
        self._config = config  # the config in force (a reload replaces it)
        self._renew = renew  # new calls get what was just learned
        self.models_dir = models_dir  # where the reply model files live (the state dir)
        self.reply_model: ReplyModel | None = None
        self.reply_model_error: str | None = None
        self.last_training: dict[str, Any] | None = None
        self.calls_since_training = 0
        self._enough_calls = asyncio.Event()
        self.interest_model: InterestModel | None = None
        self.interest_error: str | None = None
        self.last_interest_training: dict[str, Any] | None = None
        self.load_reply_model()
        self.load_interest_model()

    def register(self, link: Any) -> None:
        link.register_command("intro-revert", self.intro_revert)
        link.register_command("variant-restore", self.variant_restore)

    def require_history(self) -> History:
        """The history, for a command that needs it."""
        if self.history is None:
            raise CommandError("no_history", "the call history is not available (see the log)")
        return self.history

    # ------------------------------------------------------------ for new calls

    def prompts(self, cfg: EdgecallConfig) -> EdgecallConfig:
        """`cfg` with each campaign's learned introduction and its groups' scripts in place."""
        if self.history is None:
            return cfg
        campaigns = dict(cfg.campaigns)
        for name, campaign in cfg.campaigns.items():
            if INTRO not in campaign.prompts:
                continue
            try:
                learned = self.history.learned_intro(name)
                scripts = self.history.group_scripts(name)
            except sqlite3.Error as exc:
                log.error("call history: what %s learned is unreadable: %s", name, exc)
                continue
            prompts = dict(campaign.prompts)
            if learned is not None:  # a recording cannot say the new words
                prompts[INTRO] = Prompt(text=learned["text"])
            for script in scripts.values():
                prompts[script["prompt"]] = Prompt(text=script["text"])
            campaigns[name] = campaign.model_copy(update={"prompts": prompts})
        return cfg.model_copy(update={"campaigns": campaigns})

    def reply_chooser(self, cfg: EdgecallConfig) -> ReplyChooser:
        """How new calls choose among a turn's candidate replies."""
        rules = cfg.rules.replies
        return ReplyChooser(self.reply_model if rules.learned else None, rules.explore)

    def load_reply_model(self) -> None:
        """The model the last training kept, if any; one that does not load is reported
        and the calls use the rules."""
        self.reply_model, self.reply_model_error = None, None
        if self.models_dir is None or not (self.models_dir / MODEL_FILE).exists():
            return
        try:
            self.reply_model = ReplyModel.load(self.models_dir / MODEL_FILE)
        except ReplyModelError as exc:
            self.reply_model_error = str(exc)
            log.error("reply model unusable, the rules choose the replies: %s", exc)

    def stats(self) -> dict[str, Any]:
        """The reply model's part of <prefix>/stats, with the interest model's."""
        model = self.reply_model
        interests = self.interest_model
        return {
            "in_use": model is not None,
            "trained_at": model.meta.get("trained_at") if model else None,
            "good_samples": model.meta.get("good") if model else None,
            "error": self.reply_model_error,
            "calls_since_training": self.calls_since_training,
            "last_training": self.last_training,
            "interests": {
                "in_use": interests is not None,
                "topics": sorted(interests.topics) if interests else [],
                "customers": interests.meta.get("customers") if interests else None,
                "error": self.interest_error,
                "last_training": self.last_interest_training,
            },
        }

    # ---------------------------------------------------- customer interests

    def load_interest_model(self) -> None:
        self.interest_model, self.interest_error = None, None
        if self.models_dir is None or not (self.models_dir / INTEREST_FILE).exists():
            return
        try:
            self.interest_model = InterestModel.load(self.models_dir / INTEREST_FILE)
        except InterestModelError as exc:
            self.interest_error = str(exc)
            log.error("interest model unusable, customers keep their list's group: %s", exc)

    async def customer_group(
        self, campaign: str, number: str, group: str | None
    ) -> tuple[str | None, dict[str, Any] | None]:
        """Seed 003 S3: the group a campaign's customer is called in, and their predicted
        interests (kept with the call). A group from head office stays; otherwise the
        topic they most likely care about names it, and the group gets an introduction
        that explains that topic first (competing with the configured one)."""
        cfg, history, model = self._config(), self.history, self.interest_model
        if model is None or history is None or not cfg.rules.interests.enabled:
            return group, None
        try:
            raw = history.customer_features(number)
        except sqlite3.Error as exc:
            log.error("call history: features of a customer unreadable: %s", exc)
            return group, None
        if raw is None:
            return group, None
        predicted = model.predict(raw, date.today())
        top = top_interest(predicted, cfg.rules.interests.threshold)
        if group is None and top is not None:
            group = f"{INTEREST_GROUP}{top[0]}"
            await self._interest_script(campaign, group, top[0])
        return group, predicted

    async def _interest_script(self, campaign: str, group: str, topic: str) -> None:
        cfg, history = self._config(), self.history
        assert history is not None
        camp = cfg.campaigns[campaign]
        explanation = (
            cfg.topics[topic].explanation.get(camp.language) if topic in cfg.topics else None
        )
        nodes = intro_nodes(camp)
        if not explanation or not nodes or INTRO not in camp.prompts:
            return
        text = promoted_intro(camp.prompts[INTRO].text, explanation, camp.language)
        try:
            stored = group not in history.group_scripts(campaign) and history.store_group_script(
                campaign, group, group_prompt(group), text, [topic]
            )
        except sqlite3.Error as exc:
            log.error("call history: the script of group %s not kept: %s", group, exc)
            return
        if stored:
            self._renew()
            body = {
                "campaign": campaign,
                "group": group,
                "node": nodes[0],
                "prompt": group_prompt(group),
                "text": text,
                "topics": [topic],
                "evidence": {"calls": 0, "topics": [topic], "predicted": True},
            }
            await self._publish(GROUP_SCRIPT_SCHEMA, body)

    def variant_source(self, cfg: EdgecallConfig) -> VariantSource | None:
        """What a new call of (campaign, group) chooses its variants from."""
        history = self.history
        if history is None:
            return None
        bandit = cfg.rules.variants.bandit
        extra: dict[str, dict[str, list[str]]] = {}  # campaign -> group -> its script's key
        for name in cfg.campaigns:
            try:
                scripts = history.group_scripts(name)
            except sqlite3.Error:
                scripts = {}
            extra[name] = {g: [s["prompt"]] for g, s in scripts.items() if s["prompt"]}

        def source(campaign: str, group: str) -> VariantPicker:
            try:
                book = history.variant_book(campaign, group)
            except sqlite3.Error as exc:
                log.error("call history: variants of %s unreadable: %s", campaign, exc)
                book = {}
            keys = extra.get(campaign, {}).get(group, [])
            nodes = intro_nodes(cfg.campaigns[campaign]) if keys else []
            return VariantPicker(book, {node: keys for node in nodes}, bandit=bandit)

        return source

    # ----------------------------------------------------------- after a call

    async def after_call(self, campaign: str, group: str, outcome: dict[str, Any]) -> None:
        """Run the loops over the history the finished call just joined."""
        if self.history is None or campaign not in self._config().campaigns:
            return
        self.calls_since_training += 1
        if self.calls_since_training >= self._config().rules.replies.retrain_calls:
            self._enough_calls.set()
        if outcome.get("outcome") == "failed":
            await self.review_intro(campaign)
        await self.review_variants(campaign, group)
        await self.review_group_script(campaign, group)

    async def review_intro(self, campaign: str) -> None:
        """Section 6: when one factor leads the campaign's recent failed calls, new calls
        hear its explanation first in the product introduction."""
        cfg, history = self._config(), self.history
        assert history is not None
        rules = cfg.rules.failure_factors
        try:
            learned = history.learned_intro(campaign)
            since = history.last_revert(campaign)
            factors = history.failure_factors(campaign, rules.recent_failed_calls, since)
        except sqlite3.Error as exc:
            log.error("call history: failure factors of %s unreadable: %s", campaign, exc)
            return
        analysis = analyse(factors, rules)
        topic = intro_change(analysis, learned["topic"] if learned else None)
        language = cfg.campaigns[campaign].language
        explanation = cfg.topics[topic].explanation.get(language) if topic else None
        if topic is None or not explanation or INTRO not in cfg.campaigns[campaign].prompts:
            return
        configured = cfg.campaigns[campaign].prompts[INTRO].text
        text = promoted_intro(configured, explanation, language)
        why = evidence(analysis)
        try:
            history.learn_intro(campaign, topic, text, why)
        except sqlite3.Error as exc:
            log.error("call history: the learned introduction of %s not kept: %s", campaign, exc)
            return
        self._renew()
        log.info(
            "campaign %s: '%s' leads failed calls %s; introduction now %r",
            campaign,
            topic,
            why["shares"],
            text,
        )
        await self._publish_intro(campaign, topic, text, configured, why)

    async def review_variants(self, campaign: str, group: str) -> None:
        """Seed 003 S5: retire the variants the group's figures condemn."""
        history = self.history
        assert history is not None
        camp = self._config().campaigns[campaign]
        try:
            book = history.variant_book(campaign, group)
        except sqlite3.Error as exc:
            log.error("call history: variants of %s unreadable: %s", campaign, exc)
            return
        for node, stats in book.items():
            floors = camp.retire
            flow_node = camp.flow.nodes.get(node)
            if flow_node is not None and flow_node.end is not None:
                # nobody answers a goodbye: an end node's variants are judged on sales only
                floors = floors.model_copy(update={"min_answer_rate": 0, "min_mean_talk_s": 0})
            for retired in retirements(stats, floors):
                try:
                    history.retire_variant(campaign, group, node, retired.variant, retired.why)
                except sqlite3.Error as exc:
                    log.error("call history: retiring %s not kept: %s", retired.variant, exc)
                    return
                log.info(
                    "campaign %s, group %s: variant %s of %s retired: %s",
                    campaign,
                    group,
                    retired.variant,
                    node,
                    retired.why,
                )
                body = {
                    "campaign": campaign,
                    "group": group,
                    "node": node,
                    "variant": retired.variant,
                    "restored": False,
                    "why": retired.why,
                    "evidence": {
                        **retired.evidence,
                        "p_best_better": round(float(retired.evidence["p_best_better"]), 4),
                    },
                }
                await self._publish(VARIANT_RETIRED_SCHEMA, body)

    async def review_group_script(self, campaign: str, group: str) -> None:
        """Seed 003 S5: a group with no script of its own gets one from its interests."""
        cfg, history = self._config(), self.history
        assert history is not None
        rules = cfg.rules.variants
        camp = cfg.campaigns[campaign]
        nodes = intro_nodes(camp)
        if not nodes or INTRO not in camp.prompts:
            return
        try:
            if group in history.group_scripts(campaign):
                return
            calls, topics = history.group_interests(campaign, group, GROUP_CALLS_READ)
        except sqlite3.Error as exc:
            log.error("call history: interests of group %s unreadable: %s", group, exc)
            return
        said = [
            t for t in topics if t in cfg.topics and cfg.topics[t].explanation.get(camp.language)
        ]
        if calls < rules.group_script_min_calls or not said:
            return
        first = said[: rules.group_script_topics]
        text = camp.prompts[INTRO].text
        for topic in reversed(first):  # the most frequent ends up said first
            text = promoted_intro(text, cfg.topics[topic].explanation[camp.language], camp.language)
        prompt = group_prompt(group)
        try:
            if not history.store_group_script(campaign, group, prompt, text, first):
                return
        except sqlite3.Error as exc:
            log.error("call history: the script of group %s not kept: %s", group, exc)
            return
        self._renew()
        log.info("campaign %s, group %s: composed script %r from %s", campaign, group, text, first)
        body = {
            "campaign": campaign,
            "group": group,
            "node": nodes[0],
            "prompt": prompt,
            "text": text,
            "topics": first,
            "evidence": {"calls": calls, "topics": topics},
        }
        await self._publish(GROUP_SCRIPT_SCHEMA, body)

    # ------------------------------------------------------ reply training

    async def keep_training(self) -> None:
        """The service that retrains the reply model: after enough new calls, and at
        `retrain_at` each night."""
        while True:
            at = self._config().rules.replies.retrain_at
            wait = seconds_until(at, datetime.now()) if at else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough_calls.wait(), wait)
            self._enough_calls.clear()
            await self.train_replies()
            if self._config().rules.interests.enabled:
                await self.train_interests()

    async def train_replies(self) -> dict[str, Any] | None:
        """One training of the reply model (a child process at the lowest priority)."""
        if self.history is None or self.models_dir is None:
            return None
        rules = self._config().rules.replies
        self.calls_since_training = 0
        result = await self._child(
            "edgecall.reply_training",
            "--threshold",
            str(rules.feedback_threshold),
            "--min-samples",
            str(rules.min_samples),
            "--holdout",
            str(rules.holdout),
            "--feedback",
            rules.feedback.model_dump_json(),
        )
        self.last_training = result
        if "error" in result:
            log.error("reply training failed: %s", result["error"])
            return result
        log.info("reply training: %s (%s)", result["decision"], result.get("values"))
        if result["decision"] in ("adopted", "rules"):
            self.load_reply_model()
            self._renew()
        await self._publish(REPLY_MODEL_SCHEMA, result)
        return result

    async def train_interests(self) -> dict[str, Any] | None:
        """One training of the interest model, over the topics of the config."""
        if self.history is None or self.models_dir is None:
            return None
        topics = ",".join(self._config().topics)
        result = await self._child("edgecall.interest_training", "--topics", topics)
        self.last_interest_training = result
        if "error" in result:
            log.error("interest training failed: %s", result["error"])
        elif result.get("trained"):
            self.load_interest_model()
            log.info("interest model trained on %s customers", result.get("customers"))
        return result

    async def _child(self, module: str, *args: str) -> dict[str, Any]:
        """Run a trainer over the history in a child process: nice 19, one thread."""
        assert self.history is not None and self.models_dir is not None
        one_thread = {
            k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        }
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "nice",
            "-n",
            "19",
            sys.executable,
            "-m",
            module,
            str(self.history.path),
            str(self.models_dir),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **one_thread},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), TRAINING_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            out, err = b"", b"took longer than %d s" % TRAINING_TIMEOUT_S
        seconds = round(time.monotonic() - started, 1)
        if proc.returncode != 0:
            reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"error": reason[0], "seconds": seconds, "at": time.time()}
        result = json.loads(out)
        result.update(seconds=seconds, at=time.time())
        return result

    # -------------------------------------------------------------- commands

    async def intro_revert(self, request: CommandRequest) -> dict[str, Any]:
        cfg = self._config()
        campaign = request.args["campaign"]
        if campaign not in cfg.campaigns:
            raise CommandError("unknown_campaign", f"no campaign {campaign!r} in config.yaml")
        history = self.require_history()
        learned = history.learned_intro(campaign)
        if not history.revert_intro(campaign):
            return {"reverted": False}
        self._renew()
        configured = cfg.campaigns[campaign].prompts[INTRO].text
        await self._publish_intro(
            campaign,
            None,
            configured,
            learned["text"] if learned else "",
            {"reverted_by": "head office", "request_id": request.request_id},
        )
        return {"reverted": True, "text": configured}

    async def variant_restore(self, request: CommandRequest) -> dict[str, Any]:
        args = request.args
        campaign, node, variant = args["campaign"], args["node"], args["variant"]
        group = args.get("group", DEFAULT_GROUP)
        if campaign not in self._config().campaigns:
            raise CommandError("unknown_campaign", f"no campaign {campaign!r} in config.yaml")
        if not self.require_history().restore_variant(campaign, group, node, variant):
            return {"restored": False}
        body = {
            "campaign": campaign,
            "group": group,
            "node": node,
            "variant": variant,
            "restored": True,
            "why": "restored by head office",
            "evidence": {"reverted_by": "head office", "request_id": request.request_id},
        }
        await self._publish(VARIANT_RETIRED_SCHEMA, body)
        return {"restored": True}

    # ------------------------------------------------------------ publishing

    async def _publish_intro(
        self, campaign: str, topic: str | None, text: str, previous: str, why: dict[str, Any]
    ) -> None:
        body = {
            "campaign": campaign,
            "topic": topic,
            "text": text,
            "previous_text": previous,
            "evidence": why,
        }
        await self._publish(INTRO_CHANGE_SCHEMA, body)

    async def _publish(self, schema: str, body: dict[str, Any]) -> None:
        await self.link.publish_other(LEARNING_SUBTOPIC, envelope(self.identity, schema, body))


def seconds_until(hhmm: str, now: datetime) -> float:
    """Seconds from `now` (local) to the next `hhmm`."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += timedelta(days=1)
    return (at - now).total_seconds()
