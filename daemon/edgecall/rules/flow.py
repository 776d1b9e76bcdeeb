"""Where a campaign's conversation goes next: one step per caller turn, silence or key.

Pure code over plain data: the session gives it what the turn meant (`TurnFacts`)
and gets back a `Step`: the prompts to say, the node the call is at afterwards,
and, when the call ends, how. Precedence, highest first (call-rules.md where it
speaks; the transfer rule and poor signal are checked by the session before this):

1. what the caller asks for at any node: "stop calling me" (do-not-call), a
   person (or the DTMF key), a time or a stated reason to call back, goodbye;
2. "repeat that" and "who is this?": said, then the node's question again;
3. an explicit yes or no to the node's question;
4. a question about a topic with a follow-up: answered, then the node's question
   (call-rules.md section 2: a reply that addresses what the caller asked);
5. the influencing factor, when emotion or intent changed (section 2, step 4);
6. negative emotion: soothing, then the node's question;
7. a refusal that persists: the flow's declined node;
8. purchase intent turned positive or negative this turn: `interested` or
   `not_interested`;
9. anything else: `other` if the node has it, else the robot asks again, and
   after `max_repeats` times in a row closes the call.

An explicit answer (3) outranks the factor follow-up (5): a caller who says "yes,
go ahead" at the offer has answered, whatever keyword changed their mind.

When 4-6 offer replies, they and the node's own step (7-9) are the turn's candidates:
the rules say the first; a model trained on the box's history may rank them instead,
and a few turns try another (`edgecall.rules.replies`, `rules.replies`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

from edgecall.config.flows import Flow, FlowNode
from edgecall.config.rules import ConversationRuleConfig
from edgecall.rules.answers import Understood
from edgecall.rules.factor import Factor
from edgecall.rules.replies import CONTINUE, ReplyChoice, ReplyChooser
from edgecall.rules.variants import VariantPicker, rng_for

# How a call ends when the flow ends it; the session turns each into its outcome.
Ending = Literal[
    "sale", "declined", "do_not_call", "callback", "goodbye", "silence", "not_understood"
]


@dataclass(frozen=True)
class TurnFacts:
    """What one caller turn meant, as the session worked it out."""

    understood: Understood
    heard: bool  # the transcript had words
    emotion: int  # tendency of this turn
    intents: Sequence[int]  # intent tendencies so far, this turn last
    changed: bool  # emotion or intent changed since the previous turn
    factor: Factor | None
    asked_topics: Sequence[str]  # topics the caller's words name
    stated_reason: str | None = None  # phrase of a stated reason to call back
    positive_words: int = 0  # purchase-positive phrases in this turn
    negative_words: int = 0  # purchase-negative phrases in this turn


@dataclass(frozen=True)
class Step:
    say: tuple[str, ...]  # prompt keys in order: "opening", "followup.price"...
    node: str  # where the call is after this step
    why: str
    answer: str | None = None  # the answer or handler that decided (yes, human, silence...)
    ending: Ending | None = None
    transfer: bool = False  # the caller asked for a person
    topic: str | None = None  # the follow-up topic said, if any
    variant: str | None = None  # entering a node: which of its prompt variants it says
    choice: ReplyChoice | None = None  # a turn with several fitting replies: which was said


@dataclass
class FlowState:
    """Where one call is in its flow; the engine updates it with each step."""

    node: str
    variant: dict[str, str] = field(default_factory=dict)  # node -> the variant it says
    repeats: int = 0  # consecutive turns not understood
    silences: int = 0  # consecutive silences
    visited: list[str] = field(default_factory=list)
    turns: int = 0  # caller turns so far


class FlowEngine:
    def __init__(
        self,
        flow: Flow,
        followup_topics: Collection[str],
        rules: ConversationRuleConfig,
        pick: VariantPicker | None = None,
        replies: ReplyChooser | None = None,
    ) -> None:
        self.flow = flow
        self.followups = frozenset(followup_topics)
        self.rules = rules
        self.pick = pick or VariantPicker()
        self.replies = replies or ReplyChooser()

    def begin(self, call_id: str) -> tuple[FlowState, Step]:
        state = FlowState(node=self.flow.start)
        return state, self._enter(state, call_id, self.flow.start, "the call was answered", None)

    # --- inputs --------------------------------------------------------------

    def turn(
        self,
        state: FlowState,
        facts: TurnFacts,
        call_id: str,
        features: Mapping[str, float] | None = None,
    ) -> Step:
        """`features`: the turn as the reply model sees it (`rules.replies.reply_features`),
        for when several replies fit."""
        node = self.flow.nodes[state.node]
        state.silences = 0
        state.turns += 1
        u = facts.understood
        handover = set(node.rules)
        if u.request == "do_not_call":
            return self._close(state, "do_not_call", "do_not_call", f"caller: {u.phrase!r}")
        if u.request == "human":
            return Step(
                ("transfer_notice",), state.node, f"caller: {u.phrase!r}", "human", transfer=True
            )
        if u.callback_at is not None:
            return self._close(state, "callback", "callback", f"caller: {u.callback_phrase!r}")
        if facts.stated_reason and "stated_reason" in handover:
            return self._close(
                state, "callback", "stated_reason", f"caller: {facts.stated_reason!r}"
            )
        if u.request == "goodbye":
            return self._close(state, "goodbye", "goodbye", f"caller: {u.phrase!r}")
        if u.request == "repeat":
            state.repeats = 0
            return Step(self._node_prompt(state, node), state.node, "the caller asked", "repeat")
        if u.request == "who":
            return self._aside(state, node, ("identify",), "who", f"caller: {u.phrase!r}")
        answer, why = self._answer(node, facts)
        if answer in ("yes", "no") and answer in node.on:
            return self._move(state, call_id, answer, why)
        # the replies that fit (4-6), in the rules' order, then the node's own step (7-9)
        fits: dict[str, Callable[[], Step]] = {}
        for topic in dict.fromkeys(t for t in facts.asked_topics if t in self.followups):
            fits[f"followup.{topic}"] = partial(
                self._aside,
                state,
                node,
                (f"followup.{topic}",),
                "topic",
                f"answer the caller's question about {topic}",
                topic,
            )
        f = facts.factor
        if (
            facts.changed
            and f is not None
            and f.is_topic
            and f.keyword in self.followups
            and "factor" in handover
            and f"followup.{f.keyword}" not in fits
        ):
            fits[f"followup.{f.keyword}"] = partial(
                self._aside,
                state,
                node,
                (f"followup.{f.keyword}",),
                "factor",
                "address the influencing factor",
                f.keyword,
            )
        if facts.emotion == -1 and "soothing" in handover:
            fits["soothing"] = partial(
                self._aside, state, node, ("soothing",), "soothing", "negative emotion"
            )
        if not fits:
            return self._own_step(state, node, facts, call_id, answer, why)
        fits[CONTINUE] = partial(self._own_step, state, node, facts, call_id, answer, why)
        rng = rng_for(call_id, f"reply/{state.turns}")
        choice = self.replies.choose(list(fits), features or {}, rng)
        return replace(fits[choice.kind](), choice=choice)

    def _own_step(
        self,
        state: FlowState,
        node: FlowNode,
        facts: TurnFacts,
        call_id: str,
        answer: str | None,
        why: str,
    ) -> Step:
        """What the node itself does with the turn: a persistent refusal declines, an
        answer it names moves on, anything else is asked again."""
        n = self.rules.refusal_turns
        recent = list(facts.intents[-n:])
        if len(recent) == n and all(i == -1 for i in recent):
            why = f"intent negative for {n} turns"
            return self._move(state, call_id, "refusal", why, self.flow.declined)
        if answer is not None and answer in node.on:
            return self._move(state, call_id, answer, why)
        if facts.heard and "other" in node.on:
            return self._move(state, call_id, "other", "an answer the node does not name")
        return self._not_understood(state, node, facts.heard)

    def silence(self, state: FlowState) -> Step:
        """The caller said nothing for rules.silence_s after the last prompt."""
        state.silences += 1
        if state.silences > self.rules.silence_reprompts:
            return self._close(
                state, "silence", "silence", f"silent after {state.silences - 1} reprompt(s)"
            )
        node = self.flow.nodes[state.node]
        again = (node.reask,) if node.reask else self._node_prompt(state, node)
        return Step(("still_there", *again), state.node, "the caller is silent", "silence")

    def key(self, state: FlowState, digit: str) -> Step | None:
        """A DTMF key; None when the key means nothing here."""
        if self.rules.dtmf_human is not None and digit == self.rules.dtmf_human:
            return Step(
                ("transfer_notice",), state.node, f"caller pressed {digit}", "human", transfer=True
            )
        return None

    # --- steps ---------------------------------------------------------------

    def _answer(self, node: FlowNode, facts: TurnFacts) -> tuple[str | None, str]:
        u = facts.understood
        if u.yes_no is not None:
            return u.yes_no, f"caller: {u.phrase!r}"
        # the caller's own words must carry it: at turn 1 the parametric intent is negative
        # before anyone said anything (few turns, no positive words)
        intent = facts.intents[-1] if facts.intents else 0
        if intent == 1 and facts.positive_words > facts.negative_words:
            return "interested", "purchase intent positive, in the caller's words"
        if intent == -1 and facts.negative_words > facts.positive_words:
            return "not_interested", "purchase intent negative, in the caller's words"
        return None, ""

    def _move(
        self, state: FlowState, call_id: str, answer: str, why: str, target: str | None = None
    ) -> Step:
        node = self.flow.nodes[state.node]
        target = target or node.on[answer]
        return self._enter(state, call_id, target, why, answer)

    def _enter(
        self, state: FlowState, call_id: str, name: str, why: str, answer: str | None
    ) -> Step:
        node = self.flow.nodes[name]
        state.node, state.repeats = name, 0
        state.visited.append(name)
        variant = state.variant[name] = self.pick(name, node.say, call_id)
        ending: Ending | None = node.end
        return Step((variant,), name, why, answer, ending=ending, variant=variant)

    def _aside(
        self,
        state: FlowState,
        node: FlowNode,
        say: tuple[str, ...],
        answer: str,
        why: str,
        topic: str | None = None,
    ) -> Step:
        """Answer something beside the node's question, then bring the caller back to it."""
        state.repeats = 0
        back = (node.reask,) if node.reask else ()
        return Step((*say, *back), state.node, why, answer, topic=topic)

    def _not_understood(self, state: FlowState, node: FlowNode, heard: bool) -> Step:
        state.repeats += 1
        if state.repeats > self.rules.max_repeats:
            return self._close(
                state,
                "not_understood",
                "not_understood",
                f"not understood {state.repeats} times in a row",
            )
        why = "no answer to the node's question" if heard else "nothing heard"
        say = ("repeat",) if not heard or not node.reask else (node.reask,)
        return Step(say, state.node, why, "unclear")

    def _close(self, state: FlowState, ending: Ending, answer: str, why: str) -> Step:
        prompt = {
            "do_not_call": "do_not_call",
            "callback": "callback",
        }.get(ending, "goodbye")
        return Step((prompt,), state.node, why, answer, ending=ending)

    def _node_prompt(self, state: FlowState, node: FlowNode) -> tuple[str, ...]:
        return (state.variant.get(state.node) or node.say[0],)
