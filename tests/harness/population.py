"""A simulated caller population, to show that the learning loops learn (issue 16 part 5).

Simulated callers talk to the real rule engine (`CallSession`: lexicons, flows, the
reply choice) in text, not over SIP; every message a call publishes goes into a real
`History`, and the real learning code (`edgecall.learning`, `edgecall.reply_training`)
learns from it between calls, as the daemon does.

Assumptions (the population is made up; what matters is that each loop has something
real to find, and that no loop is told the answer):

- Three customer groups, named on the dial list: `budget` (45 % of calls, cares about
  the price), `streamers` (35 %, data) and `cautious` (20 %, the contract). The group
  is all the box knows; the caller's concern, preferences and mood are hidden.
- A caller starts with a willingness to buy (`Group.base` plus noise) and says yes at
  the offer with that probability (at the objection, with half of it).
- Hearing the explanation of their own concern in the product introduction, before
  asking, raises it by `INTRO_ADDRESSED`; having to ask and being answered, by
  `ANSWERED`; reaching the offer with the concern never explained lowers it by
  `UNADDRESSED`. A caller whose concern was not explained asks about it.
- Each group reacts to the two offer wordings differently (`Group.offer`).
- Some callers are annoyed (`Group.annoyed`) and say so with their next line after the
  introduction. Soothing an annoyed caller calms them and changes their willingness by
  `Group.soothed` (budget callers like it, streamers find it patronising); answering an
  annoyed caller's question straight away changes it by `Group.annoyed_answered` and
  calms them only if `Group.answer_calms`. A caller still annoyed at the offer is less
  willing (`STILL_ANNOYED`).
- Noise: the base willingness varies per caller (`NOISE`), and each yes or no is drawn.
- The customer list (issue 18) gives each customer features drawn from their group's
  profile (`Group.spend`, `Group.category`); `MISLEADING` of them look like another
  group's, and a fifth have no spend. The box never sees the group itself in the
  `predicted` and `none` arms.

So the failure-factor loop can find that price leads failed calls, the variant bandit
that budget callers prefer one offer and streamers the other, the group scripts that
each group has its own concern, and the reply model that annoyed budget callers want
soothing first.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from edgecall.config.root import EdgecallConfig
from edgecall.config.scripts import Prompt
from edgecall.customers import Customer as ListedCustomer
from edgecall.history import History
from edgecall.interest_training import read_samples as read_interest_samples
from edgecall.interest_training import train as train_interests
from edgecall.learning import Learning
from edgecall.messages import Identity
from edgecall.reply_training import run as train_replies
from edgecall.rules.replies import ReplyChooser
from edgecall.rules.session import (
    CallSession,
    Customer,
    HangUp,
    Lexicons,
    Say,
    Transfer,
)
from edgecall.rules.variants import VariantPicker

CAMPAIGN = "retail-en"
INTRO_ADDRESSED = 0.20
ANSWERED = 0.10
UNADDRESSED = -0.10
STILL_ANNOYED = -0.10
NOISE = 0.05
TURN_S = 6.0

# What a caller says to ask about their concern (each names the topic for the lexicons).
QUESTIONS = {
    "price": "How much is it per month?",
    "data": "How many gigabytes of data do I get?",
    "contract": "Can I cancel anytime?",
}
OFFER_B = (
    "It costs less than most plans: the first month is free, then 59 yuan. "
    "Shall I go ahead with the {product}?"
)


@dataclass(frozen=True)
class Group:
    name: str
    share: float
    topic: str
    base: float
    offer: dict[str, float]  # willingness change on hearing each offer wording
    annoyed: float  # share of callers who are annoyed
    soothed: float  # willingness change when soothed while annoyed
    annoyed_answered: float  # willingness change when answered while annoyed
    answer_calms: bool  # an answer calms an annoyed caller of this group
    spend: tuple[float, float]  # list feature: total spend, drawn uniformly in this range
    category: str  # list feature: what they usually buy


GROUPS = (
    Group(
        "budget",
        share=0.45,
        topic="price",
        base=0.10,
        offer={"offer": -0.05, "offer_b": 0.20},
        annoyed=0.5,
        soothed=0.25,
        annoyed_answered=-0.10,
        answer_calms=False,
        spend=(0, 300),
        category="prepaid",
    ),
    Group(
        "streamers",
        share=0.35,
        topic="data",
        base=0.15,
        offer={"offer": 0.15, "offer_b": -0.05},
        annoyed=0.3,
        soothed=-0.20,
        annoyed_answered=0.0,
        answer_calms=True,
        spend=(400, 3000),
        category="video",
    ),
    Group(
        "cautious",
        share=0.20,
        topic="contract",
        base=0.10,
        offer={"offer": 0.05, "offer_b": 0.05},
        annoyed=0.3,
        soothed=0.10,
        annoyed_answered=-0.05,
        answer_calms=False,
        spend=(100, 1500),
        category="insurance",
    ),
)
MISLEADING = 0.15  # share of customers whose list features look like another group's


def list_features(group: Group, rng: random.Random) -> dict[str, Any]:
    """What the customer list says of a customer (issue 18): their group's profile, or,
    for MISLEADING of them, another group's; a fifth miss their spend."""
    looks = group if rng.random() >= MISLEADING else rng.choice([g for g in GROUPS if g != group])
    raw: dict[str, Any] = {
        "total_spend": round(rng.uniform(*looks.spend), 2),
        "purchase_count": rng.randint(1, 6),
        "categories": [looks.category],
        "clicks": rng.randint(0, 40),
    }
    if rng.random() < 0.2:
        del raw["total_spend"]
    return raw


def campaign_config(cfg: EdgecallConfig) -> EdgecallConfig:
    """The shipped English campaign with a second wording of the offer."""
    campaign = cfg.campaigns[CAMPAIGN]
    prompts = {**campaign.prompts, "offer_b": Prompt(text=OFFER_B)}
    offer = campaign.flow.nodes["offer"].model_copy(update={"say": ["offer", "offer_b"]})
    flow = campaign.flow.model_copy(update={"nodes": {**campaign.flow.nodes, "offer": offer}})
    campaigns = {
        **cfg.campaigns,
        CAMPAIGN: campaign.model_copy(update={"prompts": prompts, "flow": flow}),
    }
    return cfg.model_copy(update={"campaigns": campaigns})


@dataclass
class Caller:
    """One simulated person: what they care about and how they feel, hidden from the box."""

    group: Group
    willing: float
    annoyed: bool
    explanations: dict[str, str]  # topic -> the campaign's explanation text
    features: dict[str, Any] = field(default_factory=dict)  # what the customer list says
    addressed: bool = False
    said_annoyed: bool = False
    heard_offer: bool = False
    rng: random.Random = field(default_factory=random.Random)

    def hear(self, says: list[Say]) -> str | None:
        """The caller's next line after the robot said `says` (None: nothing to say)."""
        said = [s for s in says if s.text]
        if not said:
            return None
        reply = None
        for say in said:
            reply = self._react(say) or reply
        return reply

    def _react(self, say: Say) -> str | None:
        g, situation = self.group, say.situation
        concern = self.explanations[g.topic]
        if situation == "soothing" and self.annoyed:
            self.annoyed = False
            self.willing += g.soothed
        if situation == "followup" and say.topic == g.topic and not self.addressed:
            self.addressed = True
            self.willing += ANSWERED + (g.annoyed_answered if self.annoyed else 0)
            self.annoyed = self.annoyed and not g.answer_calms
        if situation.startswith("product_intro") and concern in say.text and not self.addressed:
            self.addressed = True
            self.willing += INTRO_ADDRESSED
        if situation in ("offer", "offer_b"):
            if not self.heard_offer:
                self.heard_offer = True
                self.willing += g.offer[situation]
                self.willing += UNADDRESSED if not self.addressed else 0
                self.willing += STILL_ANNOYED if self.annoyed else 0
            return "Yes, go ahead." if self.rng.random() < self.willing else "No thanks."
        if situation == "objection":
            return "Yes, go ahead." if self.rng.random() < self.willing / 2 else "No thanks."
        if situation == "opening":
            return "Hello, what is it about?"
        annoyance = "This is annoying. " if self.annoyed and not self.said_annoyed else ""
        self.said_annoyed = self.said_annoyed or bool(annoyance)
        if situation.startswith("product_intro") or situation in ("intro_question", "soothing"):
            if not self.addressed:
                return annoyance + QUESTIONS[g.topic]
            return annoyance + "Tell me more." if annoyance else "Sounds good, tell me more."
        if situation in ("still_there", "repeat"):
            return "Sounds good, tell me more." if self.addressed else QUESTIONS[g.topic]
        if situation == "followup":
            return "Okay, sounds good." if self.addressed else QUESTIONS[g.topic]
        return None


@dataclass(frozen=True)
class Arm:
    """Which learning loops run."""

    name: str
    intro: bool = False  # failure factors change the introduction
    variants: bool = False  # the bandit over the configured variants
    scripts: bool = False  # groups get composed introductions (judged by the bandit)
    replies: bool = False  # the reply model (with exploration)
    # where a call's customer group comes from: the dial list (the true group), nowhere
    # (everyone 'general'), or the interest model over the list features (issue 18)
    groups: Literal["list", "none", "predicted"] = "list"


EVERY_LOOP = {"intro": True, "variants": True, "scripts": True, "replies": True}
# issue 18: the same list with no groups, and with groups from the predicted interests
PERSONALISED_ARMS = (
    Arm("all loops, no groups", **EVERY_LOOP, groups="none"),
    Arm("all loops, predicted groups", **EVERY_LOOP, groups="predicted"),
)
ARMS = (
    Arm("fixed script"),
    Arm("failure-factor intro", intro=True),
    Arm("bandit variants", variants=True),
    Arm("bandit + group scripts", variants=True, scripts=True),
    Arm("learned replies", replies=True),
    Arm("all together", intro=True, variants=True, scripts=True, replies=True),
)


class Simulation:
    """One arm, one seed: `calls` simulated calls through the engine and the learning."""

    def __init__(self, cfg: EdgecallConfig, arm: Arm, directory: Path, seed: int) -> None:
        self.cfg = campaign_config(cfg)
        self.arm = arm
        self.rng = random.Random(seed)
        self.seed = seed
        self.directory = directory
        self.clock = [1_800_000_000.0]
        self.history = History(
            directory / "history.sqlite", keep_days=3650, clock=lambda: self.clock[0]
        )
        self.lexicons = Lexicons(self.cfg)
        self.identity = Identity("sim", "box-1")
        self.learning = Learning(
            self.history,
            self.identity,
            _Nowhere(),
            config=lambda: self.cfg,
            renew=self._changed,
            models_dir=directory,
        )
        self._serving: EdgecallConfig | None = None
        self.calls_since_training = 0
        self.explanations = {t: topic.explanation["en"] for t, topic in self.cfg.topics.items()}

    def _changed(self) -> None:
        self._serving = None

    def _serving_config(self) -> EdgecallConfig:
        if self._serving is None:
            self._serving = self.learning.prompts(self.cfg)
        return self._serving

    def caller(self) -> Caller:
        """The next caller drawn from the population."""
        group = self.rng.choices(GROUPS, [g.share for g in GROUPS])[0]
        return Caller(
            group,
            group.base + self.rng.gauss(0, NOISE),
            self.rng.random() < group.annoyed,
            self.explanations,
            list_features(group, self.rng),
            rng=random.Random(self.rng.random()),
        )

    async def call(self, n: int, caller: Caller | None = None) -> dict[str, Any]:
        caller = caller or self.caller()
        group = caller.group
        number = f"+1555{n:07d}"
        customer = await self._customer(n, number, caller)
        arm, cfg = self.arm, self._serving_config()
        source = self.learning.variant_source(cfg) if arm.variants else None
        replies = self.learning.reply_chooser(cfg) if arm.replies else ReplyChooser()
        self.clock[0] += 60
        t = self.clock[0]
        session = CallSession(
            cfg,
            self.lexicons,
            self.identity,
            call_id=f"sim-{self.seed}-{n}",
            direction="outbound",
            remote=number,
            t=t,
            campaign=CAMPAIGN,
            customer=customer,
            variants=source or _equal_shares,
            replies=replies,
        )
        actions = session.opening(t)
        for _ in range(12):
            says = [a for a in actions if isinstance(a, Say)]
            if any(isinstance(a, HangUp | Transfer) for a in actions):
                break
            line = caller.hear(says)
            if line is None:
                break
            t += TURN_S
            actions = session.caller_turn(line, t)
        for a in actions:
            if isinstance(a, Transfer):
                session.transfer_result(True, "simulated agent", t + 1)
        session.hangup("appliance", t + 2)
        outcome = session.finish(t + 2)
        for message in session.take_messages():
            if message.kind in ("event", "outcome"):
                self.history.record(message.body)
        self.clock[0] = t + 2
        await self._learn(group.name, outcome)
        return outcome

    async def _customer(self, n: int, number: str, caller: Caller) -> Customer:
        """Who the box thinks it calls: the list's group, none, or the predicted one."""
        if self.arm.groups == "list":
            return Customer(f"cust-{n}", caller.group.name)
        if self.arm.groups == "none":
            return Customer(f"cust-{n}")
        listed = ListedCustomer(0, number, number, {"customer_id": f"cust-{n}"}, caller.features)
        self.history.store_customers([listed], CAMPAIGN, "sim")
        group, interests = await self.learning.customer_group(CAMPAIGN, number, None)
        return Customer(f"cust-{n}", group, interests)

    async def _learn(self, group: str, outcome: dict[str, Any]) -> None:
        arm = self.arm
        group = outcome.get("customer_group") or group
        if arm.intro and outcome.get("outcome") == "failed":
            await self.learning.review_intro(CAMPAIGN)
        if arm.variants:
            await self.learning.review_variants(CAMPAIGN, group)
        if arm.scripts:
            await self.learning.review_group_script(CAMPAIGN, group)
        if arm.replies:
            self.calls_since_training += 1
            rules = self.cfg.rules.replies
            if self.calls_since_training >= rules.retrain_calls:
                self.calls_since_training = 0
                train_replies(
                    self.history.path,
                    self.directory,
                    threshold=rules.feedback_threshold,
                    min_samples=rules.min_samples,
                    holdout=rules.holdout,
                    feedback=rules.feedback,
                )
                self.learning.load_reply_model()
            if arm.groups == "predicted" and self.calls_since_training == 0:
                samples = read_interest_samples(self.history.path)
                model, _ = train_interests(samples, list(self.cfg.topics), date.today())
                self.learning.interest_model = model or self.learning.interest_model

    async def run(self, calls: int) -> list[bool]:
        """Whether each call was a sale, in order."""
        return [bool((await self.call(n)).get("agreed")) for n in range(calls)]


def _equal_shares(campaign: str, group: str) -> VariantPicker:
    """Without the bandit: each call one variant, all in equal shares."""
    return VariantPicker(bandit=False)


class _Nowhere:
    """The learning loops' link: what they publish is not needed here."""

    async def publish_other(self, subtopic: str, message: dict[str, Any]) -> str:
        return message["message_id"]


def simulate(cfg: EdgecallConfig, arm: Arm, directory: Path, seed: int, calls: int) -> list[bool]:
    directory.mkdir(parents=True, exist_ok=True)
    sim = Simulation(cfg, arm, directory, seed)
    try:
        return asyncio.run(sim.run(calls))
    finally:
        sim.history.close()
