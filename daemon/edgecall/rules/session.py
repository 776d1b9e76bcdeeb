"""One call as the rule engine sees it: inputs in, events, actions and one outcome out.

Pure code: no SIP, no MQTT, no clock of its own (every input carries its time `t`,
in seconds since the epoch). The daemon and `edgecall replay` feed it the same
way, so a replayed call produces exactly the messages a live call would.

Every message of a call carries a per-call sequence number; the call ends with
exactly one outcome (call-rules.md section 8), whatever order inputs arrive in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from edgecall.config.root import EdgecallConfig
from edgecall.config.scripts import Prompt
from edgecall.messages import EVENT_SCHEMA, OUTCOME_SCHEMA, Identity, envelope
from edgecall.rules.answers import AnswerReader
from edgecall.rules.emotion import Emotion, emotion_tendency, fuse, lexicon_score
from edgecall.rules.factor import Factor, influencing_factor
from edgecall.rules.flow import Ending, FlowEngine, FlowState, Step, TurnFacts
from edgecall.rules.intent import Intent, IntentCounts, purchase_intent
from edgecall.rules.keywords import KeywordExtractor
from edgecall.rules.phrases import PhraseMatcher
from edgecall.rules.poor_signal import PoorSignal, PoorSignalWindow
from edgecall.rules.redial import decide_redial, draw_delay, global_quality, stated_reason
from edgecall.rules.replies import ReplyChooser, reply_features
from edgecall.rules.scene import SceneClassifier
from edgecall.rules.transfer import should_transfer
from edgecall.rules.understanding import UnderstandingJudge
from edgecall.rules.variants import DEFAULT_GROUP, VariantPicker
from edgecall.speech.text import CALL_SLOTS, render, slots_in

AGENT_PROMPT_SCHEMA = "edgecall.agent-prompt/1"
# Quality samples are published in batches of this many seconds, not one message a second.
QUALITY_BATCH = 5

MessageKind = Literal["event", "outcome", "agent_prompt"]
# The prompt variants a campaign's calls of one customer group choose from (campaign, group).
VariantSource = Callable[[str, str], VariantPicker]


@dataclass(frozen=True)
class Customer:
    """Who is called, as the dial list says: head office's customer id and group."""

    id: str | None = None
    group: str | None = None
    interests: Mapping[str, Any] | None = None  # predicted per topic, with the reasons


@dataclass(frozen=True)
class Message:
    """A message for head office; `agent` names the extension for agent prompts."""

    kind: MessageKind
    body: dict[str, Any]
    agent: str | None = None


# --- Actions the daemon carries out -----------------------------------------


@dataclass(frozen=True)
class Say:
    situation: str
    text: str
    wav: str | None = None
    topic: str | None = None
    personal: bool = False  # the text holds this caller's details: synthesized, never cached
    barge_in: bool = True  # False for prompts that end the call or hand it on


@dataclass(frozen=True)
class Transfer:
    target: str
    reason: str


@dataclass(frozen=True)
class HangUp:
    reason: str


@dataclass(frozen=True)
class SendSms:
    number: str | None
    text: str


@dataclass(frozen=True)
class AddToDoNotCall:
    """The caller asked never to be called again: the number goes on the box's list."""

    number: str | None
    phrase: str


Action = Say | Transfer | HangUp | SendSms | AddToDoNotCall


class Lexicons:
    """Matchers and extractors built once from the config and shared by all calls."""

    def __init__(self, cfg: EdgecallConfig) -> None:
        self.intent = {
            lang: PhraseMatcher(
                {
                    "negative": pack.negative_words,
                    "positive": pack.positive_words,
                    "price": pack.price_words,
                },
                lang,
            )
            for lang, pack in cfg.languages.items()
        }
        self.mood = {
            lang: PhraseMatcher(
                {
                    "emotion_negative": pack.emotion_negative,
                    "emotion_positive": pack.emotion_positive,
                },
                lang,
            )
            for lang, pack in cfg.languages.items()
        }
        self.keywords = KeywordExtractor(
            cfg.topics, {lang: pack.stopwords for lang, pack in cfg.languages.items()}
        )
        self.judge = UnderstandingJudge(cfg.topics, self.keywords)
        self.answers = AnswerReader({lang: pack.answers for lang, pack in cfg.languages.items()})


@dataclass
class Turn:
    index: int
    utterance: str
    emotion: Emotion
    intent: Intent
    reply: str
    situation: str
    factor: Factor | None
    node: str = ""
    kind: str | None = None  # the reply chosen, when the turn had a choice
    topics: tuple[str, ...] = ()  # the topics the caller's words named


@dataclass
class _State:
    counts: IntentCounts = field(default_factory=IntentCounts)
    turns: list[Turn] = field(default_factory=list)
    samples: list[float | None] = field(default_factory=list)
    pending_quality: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    flow: FlowState | None = None
    ending: Ending | None = None  # how the flow ended the call, if it did
    ending_why: str = ""
    callback: dict[str, Any] | None = None  # the callback the caller asked for
    transfer: Transfer | None = None
    poor_signal: PoorSignal | None = None
    sms: dict[str, Any] | None = None
    hangup: dict[str, Any] | None = None
    last_factor: Factor | None = None


class CallSession:
    def __init__(
        self,
        cfg: EdgecallConfig,
        lexicons: Lexicons,
        identity: Identity,
        *,
        call_id: str,
        direction: Literal["inbound", "outbound"],
        remote: str | None,
        t: float,
        language: str | None = None,
        campaign: str | None = None,
        classifier: SceneClassifier | None = None,
        ref: str | None = None,
        customer: Customer | None = None,
        variants: VariantSource | None = None,
        replies: ReplyChooser | None = None,
    ) -> None:
        self.cfg = cfg
        self.ref = ref  # the dial list's own reference, echoed in call.started and the outcome
        self.customer = customer or Customer()
        self.group = self.customer.group or DEFAULT_GROUP
        self.call_id = call_id
        self._lex = lexicons
        self._identity = identity
        self._classifier = classifier
        self._remote = remote
        self._seq = 0
        self._messages: list[Message] = []
        self._window = PoorSignalWindow(cfg.rules.poor_signal)
        self.state = _State()
        self.outcome: dict[str, Any] | None = None

        self.campaign_name = campaign if campaign in cfg.campaigns else cfg.default_campaign
        if campaign is not None and campaign not in cfg.campaigns:
            self.state.missing.append(f"campaign {campaign!r} unknown, used {self.campaign_name!r}")
        self.campaign = cfg.campaigns[self.campaign_name]
        self._flow = FlowEngine(
            self.campaign.flow,
            self.campaign.followups.keys(),
            cfg.rules.conversation,
            variants(self.campaign_name, self.group)
            if variants
            else VariantPicker(bandit=cfg.rules.variants.bandit),
            replies or ReplyChooser(explore=cfg.rules.replies.explore),
        )
        self._zone = cfg.appliance.zone()
        wanted = language or self.campaign.language
        self.language = wanted if wanted in cfg.languages else cfg.appliance.default_language
        if wanted != self.language:
            self.state.missing.append(f"language {wanted!r} unknown, used {self.language!r}")
        self._emit(
            "call.started",
            t,
            direction=direction,
            remote=remote,
            language=self.language,
            campaign=self.campaign_name,
            ref=ref,
            customer_id=self.customer.id,
            customer_group=self.group,
            interests=dict(self.customer.interests) if self.customer.interests else None,
            notes=list(self.state.missing),
        )

    # --- inputs ---------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    def opening(self, t: float) -> list[Action]:
        """The flow's first node once the call is answered."""
        self.state.flow, step = self._flow.begin(self.call_id)
        return self._carry(step, t, announce=True)

    def silence(self, t: float) -> list[Action]:
        """The caller made no sound for rules.conversation.silence_s after a prompt."""
        if not self._listening:
            return []
        return self._carry(self._flow.silence(self._flow_state()), t, announce=True)

    def key(self, digit: str, t: float) -> list[Action]:
        """A DTMF key the caller pressed."""
        if self.ended or self.state.hangup is not None:
            return []
        self._emit("dtmf", t, digit=digit, node=self.state.flow.node if self.state.flow else None)
        if not self._listening:
            return []
        step = self._flow.key(self._flow_state(), digit)
        return [] if step is None else self._carry(step, t, announce=True)

    @property
    def _listening(self) -> bool:
        """The robot still converses: no end, transfer, poor signal or hang-up under way."""
        st = self.state
        return not (
            self.ended or st.transfer or st.poor_signal or st.ending or st.hangup is not None
        )

    def _flow_state(self) -> FlowState:
        """The call's place in its flow; a call whose opening was never said (a replay that
        starts with the caller, a test) is at the start node."""
        if self.state.flow is None:
            self.state.flow, _ = self._flow.begin(self.call_id)
        return self.state.flow

    def caller_turn(
        self,
        text: str | None,
        t: float,
        *,
        acoustic: float | None = None,
        text_score: float | None = None,
        reply: str | None = None,
    ) -> list[Action]:
        """One caller utterance (ended by the ASR endpoint). `acoustic`/`text_score` are
        model estimates in [-1, 1] when available; `reply`, when given, is the reply that
        was actually spoken (a human agent, or a replay file) instead of the script's."""
        st = self.state
        if not self._listening:
            return []
        flow = self._flow_state()
        utterance = (text or "").strip()
        index = len(st.turns) + 1
        notes = []
        if not utterance:
            notes.append("transcript")
            st.missing.append(f"transcript of turn {index}")

        intent_hits = self._lex.intent[self.language].count(utterance)
        st.counts = st.counts.plus(
            intent_hits["positive"], intent_hits["negative"], intent_hits["price"]
        )
        intent = purchase_intent(st.counts, self.cfg.rules.intent)
        if text_score is None and utterance:
            text_score = lexicon_score(self._lex.mood[self.language].count(utterance))
        emotion = fuse(text_score, acoustic, self.cfg.rules.emotion)
        if "acoustic" in emotion.missing:
            notes.append("acoustic")

        prev = st.turns[-1] if st.turns else None
        emotion_changed = prev is not None and prev.emotion.tendency != emotion.tendency
        intent_changed = prev is not None and prev.intent.tendency != intent.tendency
        factor = None
        if (emotion_changed or intent_changed) and prev is not None and utterance:
            factor = influencing_factor(
                self._lex.keywords,
                self._lex.judge,
                prev.utterance,
                prev.reply,
                utterance,
                self.language,
            )
            if factor.keyword:
                st.last_factor = factor

        intents = [x.intent.tendency for x in st.turns] + [intent.tendency]
        emotions = [x.emotion.tendency for x in st.turns] + [emotion.tendency]
        node = self.campaign.flow.nodes[flow.node]
        transfer = "transfer" in node.rules and should_transfer(
            intents, emotions, self.cfg.rules.transfer
        )
        reason = stated_reason([utterance], self.language, self.cfg.rules.redial)
        asked = self._lex.keywords.topics_in(utterance, self.language)
        levels = [x for x in st.samples if x is not None]
        features = reply_features(
            node=flow.node,
            emotion=emotion.score,
            emotion_tendency=emotion.tendency,
            intent=intent.value,
            intent_tendency=intent.tendency,
            previous=(prev.emotion.tendency, prev.intent.tendency) if prev else None,
            topics=asked,
            asked_before=[t for x in st.turns for t in x.topics],
            factor_topic=factor.topic if factor and factor.is_topic else None,
            positive_words=intent_hits["positive"],
            negative_words=intent_hits["negative"],
            previous_reply=prev.kind if prev else None,
            turn=index,
            signal_dbm=sum(levels) / len(levels) if levels else None,
        )
        facts = TurnFacts(
            understood=self._lex.answers.read(utterance, self.language, self._local(t)),
            heard=bool(utterance),
            emotion=emotion.tendency,
            intents=intents,
            changed=emotion_changed or intent_changed,
            factor=factor,
            asked_topics=asked,
            stated_reason=reason[1] if reason else None,
            positive_words=intent_hits["positive"],
            negative_words=intent_hits["negative"],
        )
        if transfer:
            rule = self.cfg.rules.transfer
            why = (
                f"intent positive for {rule.intent_positive_turns} turns, emotion negative for "
                f"{rule.emotion_negative_turns} after being positive"
            )
            step = Step(("transfer_notice",), flow.node, why, "transfer", transfer=True)
        else:
            step = self._flow.turn(flow, facts, self.call_id, features)
        if step.ending == "callback":
            st.callback = self._callback(facts, reason, t)
        says = self._says(step)
        spoken = reply if reply is not None else " ".join(x.text for x in says)
        situation = says[0].situation if says else ""
        kind = step.choice.kind if step.choice else None
        st.turns.append(
            Turn(
                index,
                utterance,
                emotion,
                intent,
                spoken,
                situation,
                factor,
                step.node,
                kind,
                tuple(asked),
            )
        )
        self._emit(
            "turn",
            t,
            turn=index,
            utterance=utterance,
            emotion=_emotion_json(emotion),
            intent=_intent_json(intent, st.counts),
            consistency={"emotion_changed": emotion_changed, "intent_changed": intent_changed},
            factor=_factor_json(factor),
            reply={
                "situation": situation,
                "topic": step.topic,
                "why": step.why,
                "text": spoken,
                "scripted": reply is None,
                "node": step.node,
                "answer": step.answer,
                "choice": step.choice.to_json() if step.choice else None,
            },
            missing=notes,
        )
        return self._carry(step, t, says=says)

    def quality(self, dbm: float | None, t: float, source: str | None = None) -> list[Action]:
        """One per-second quality sample in dBm (None when no source had a value)."""
        st = self.state
        if self.ended or st.hangup or st.poor_signal:
            return []
        st.samples.append(dbm)
        st.pending_quality.append({"t": _iso(t), "dbm": dbm, "source": source})
        if len(st.pending_quality) >= QUALITY_BATCH:
            self._flush_quality(t)
        fired = self._window.push(dbm)
        if fired is None or st.transfer:
            return []
        st.poor_signal = fired
        self._flush_quality(t)
        rule = self.cfg.rules.poor_signal
        self._emit(
            "poor_signal",
            t,
            window=list(fired.samples),
            poor=fired.poor,
            min_quality_dbm=rule.min_quality_dbm,
        )
        sms_text = self.campaign.poor_signal_sms.replace("{product}", self.campaign.product)
        self.state.sms = {"route": self.cfg.trunk.sms.route, "text": sms_text, "sent": None}
        self._emit("sms.requested", t, route=self.cfg.trunk.sms.route, number=self._remote)
        return [
            self._say("network_problem", t),
            HangUp("poor_signal"),
            SendSms(self._remote, sms_text),
        ]

    def prompt_played(self, t: float, **how: Any) -> None:
        """What the caller heard of a prompt: its source and voice, and whether (and when)
        the caller cut it short; see the prompt.played event in schemas/event.json."""
        self._emit("prompt.played", t, **how)

    def sms_result(self, sent: bool, detail: str, t: float) -> None:
        """Result of the poor-signal SMS; the outcome waits for it (or for `finish`)."""
        if self.state.sms is None or self.ended:
            return
        self.state.sms.update(sent=sent, detail=detail)
        self._emit("sms.result", t, sent=sent, detail=detail)
        if self.state.hangup is not None:
            self._decide(t)

    def transfer_result(self, ok: bool, detail: str, t: float) -> None:
        """Result of the SIP transfer; a failed transfer leaves the call with the robot."""
        tr = self.state.transfer
        if tr is None or self.ended:
            return
        self._emit("transfer.result", t, ok=ok, target=tr.target, detail=detail)
        if ok:
            self._finish_with("transferred", t, target=tr.target, reason=tr.reason, detail=detail)
        else:
            self.state.transfer = None
            self.state.missing.append(f"transfer to {tr.target} failed: {detail}")

    def quality_note(self, note: dict[str, Any], t: float) -> None:
        """The quality source changed (e.g. the modem stopped answering): say so, and why."""
        if self.ended:
            return
        self._emit(
            "quality.source",
            t,
            source_from=note.get("from"),
            source_to=note.get("to"),
            reason=note.get("reason", ""),
        )

    def not_connected(
        self, reason: Literal["busy", "no_answer", "rejected", "failed"], t: float, detail: str = ""
    ) -> None:
        """An outbound call that never reached the callee: its outcome says why."""
        if not self.ended:
            self._finish_with("not_connected", t, reason=reason, detail=detail)

    def hangup(
        self, by: Literal["caller", "appliance", "network"], t: float, reason: str = ""
    ) -> None:
        """The call ended. The outcome follows now, or once a pending SMS result is in."""
        st = self.state
        if self.ended or st.hangup is not None:
            return
        self._flush_quality(t)
        st.hangup = {"by": by, "reason": reason, "t": t}
        self._emit("hangup", t, by=by, reason=reason)
        if st.poor_signal is not None and st.sms is not None and st.sms["sent"] is None:
            return  # wait for sms_result, or finish()
        self._decide(t)

    def finish(self, t: float, reason: str = "call closed") -> dict[str, Any]:
        """Close the call whatever its state; guarantees the single outcome."""
        if not self.ended:
            if self.state.hangup is None:
                self.hangup("appliance", t, reason)
            if not self.ended:  # still waiting for the SMS result
                assert self.state.sms is not None
                self.state.sms.update(sent=False, detail="no SMS result before the call closed")
                self._decide(t)
        assert self.outcome is not None
        return self.outcome

    def fail(self, reason: str, t: float) -> dict[str, Any]:
        """An internal error ended the call: still exactly one outcome."""
        if not self.ended:
            self._finish_with("error", t, reason=reason)
        assert self.outcome is not None
        return self.outcome

    def take_messages(self) -> list[Message]:
        out, self._messages = self._messages, []
        return out

    # --- decisions --------------------------------------------------------------

    def _carry(
        self, step: Step, t: float, *, announce: bool = False, says: list[Say] | None = None
    ) -> list[Action]:
        """The actions of a flow step; `announce` publishes its prompts (a turn's reply is
        published in the turn event instead)."""
        st = self.state
        says = self._says(step) if says is None else says
        self._emit(
            "flow",
            t,
            node=step.node,
            answer=step.answer,
            why=step.why,
            prompts=list(step.say),
            variant=step.variant,
            ending=step.ending,
        )
        if announce:
            for say in says:
                self._emit("prompt", t, situation=say.situation, text=say.text)
        if step.transfer:
            return self._transfer(t, step.why)
        actions: list[Action] = list(says)
        if step.ending is not None:
            st.ending, st.ending_why = step.ending, step.why
            if step.ending == "do_not_call":
                # recorded before the goodbye is said: a caller who hangs up on it is still
                # never called again
                self._emit("do_not_call", t, number=self._remote, why=step.why)
                actions.insert(0, AddToDoNotCall(self._remote, step.why))
            actions.append(HangUp(f"flow ended: {step.ending}"))
        return actions

    def _says(self, step: Step) -> list[Say]:
        final = step.ending is not None or step.transfer
        return [replace_barge_in(self._spoken_key(key, step.topic), not final) for key in step.say]

    def _callback(
        self, facts: TurnFacts, reason: tuple[int, str] | None, t: float
    ) -> dict[str, Any]:
        """When to call back: the time the caller named, else the delay of their reason."""
        u = facts.understood
        redial = self.cfg.rules.redial
        if u.callback_at is not None:
            due = max(u.callback_at.timestamp(), t + self.cfg.rules.conversation.callback_min_s)
            return {
                "scene": "callback",
                "decided_by": "caller_time",
                "stated_phrase": u.callback_phrase,
                "due_t": due,
            }
        assert reason is not None
        rule = redial.stated_reasons[reason[0]]
        delay = draw_delay(rule.delay, self.call_id)
        return {
            "scene": rule.scene,
            "decided_by": "stated_reason",
            "stated_phrase": reason[1],
            "due_t": t + delay,
        }

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self._zone).astimezone(self._zone)

    def _transfer(self, t: float, reason: str) -> list[Action]:
        st = self.state
        target = self.cfg.sip.agent_target
        st.transfer = Transfer(target, reason)
        self._emit("transfer.requested", t, target=target, reason=reason)
        self._messages.append(
            Message(
                "agent_prompt",
                self._envelope(
                    AGENT_PROMPT_SCHEMA,
                    t,
                    kind="transfer_handoff",
                    agent=target,
                    reason=reason,
                    transcript=self.labelled_transcript(),
                ),
                agent=target,
            )
        )
        notice = replace_barge_in(self._spoken_key("transfer_notice"), False)
        return [notice, st.transfer]

    def labelled_transcript(self) -> list[dict[str, Any]]:
        """The call so far for the agent's desk: caller lines carry emotion and intent."""
        lines: list[dict[str, Any]] = []
        for turn in self.state.turns:
            lines.append(
                {
                    "turn": turn.index,
                    "speaker": "caller",
                    "text": turn.utterance,
                    "emotion": turn.emotion.tendency,
                    "intent": turn.intent.tendency,
                }
            )
            lines.append({"turn": turn.index, "speaker": "robot", "text": turn.reply})
        return lines

    def _decide(self, t: float) -> None:
        st = self.state
        assert st.hangup is not None
        by = st.hangup["by"]
        quality = global_quality(st.samples)
        if quality is None:
            st.missing.append("quality samples")
        if st.poor_signal is not None:
            self._finish_with(
                "poor_signal_hangup",
                t,
                window=list(st.poor_signal.samples),
                poor=st.poor_signal.poor,
                sms=dict(st.sms or {}),
            )
            return
        if not st.turns:
            reason = f"hung up by {by} before the caller said anything"
            if st.ending:
                reason = f"{st.ending}: {st.ending_why}, before the caller said anything"
            self._finish_with("abandoned", t, reason=reason)
            return
        final = st.turns[-1]
        node = st.flow.node if st.flow else None
        if st.ending == "sale":
            self._finish_with(
                "completed",
                t,
                emotion=final.emotion.tendency,
                intent=final.intent.tendency,
                intent_value=final.intent.value,
                agreed=True,
                node=node,
            )
            return
        scores = [x.emotion.score for x in st.turns if x.emotion.sources]
        g_emotion = (
            emotion_tendency(sum(scores) / len(scores), self.cfg.rules.emotion) if scores else 0
        )
        g_intent = final.intent.tendency
        globals_ = {"quality_dbm": quality, "emotion": g_emotion, "intent": g_intent}
        if st.ending == "callback" and st.callback is not None:
            cb = st.callback
            hung_up_t = st.hangup["t"]
            self._finish_with(
                "redial_scheduled",
                t,
                scene=cb["scene"],
                delay_s=max(0, round(cb["due_t"] - hung_up_t)),
                due=_iso(cb["due_t"]),
                decided_by=cb["decided_by"],
                stated_phrase=cb["stated_phrase"],
                scene_confidence=None,
                number=self._remote,
                globals=globals_,
                agreed=False,
                node=node,
            )
            return
        redial = (
            None
            if st.ending
            else decide_redial(
                call_id=self.call_id,
                quality=quality,
                emotion=g_emotion,
                intent=g_intent,
                utterances=[x.utterance for x in st.turns],
                trace=st.samples,
                language=self.language,
                cfg=self.cfg.rules.redial,
                classifier=self._classifier,
            )
        )
        if redial is not None:
            self._finish_with(
                "redial_scheduled",
                t,
                scene=redial.scene,
                delay_s=redial.delay_s,
                due=_iso(st.hangup["t"] + redial.delay_s),
                decided_by=redial.decided_by,
                stated_phrase=redial.stated_phrase,
                scene_confidence=redial.confidence,
                number=self._remote,
                globals=globals_,
                agreed=False,
                node=node,
            )
            return
        factor = st.last_factor
        self._finish_with(
            "failed",
            t,
            factor=factor.keyword if factor else None,
            factor_rule=factor.rule if factor else None,
            factor_topic=factor.topic if factor else None,
            hung_up_by=by,
            globals=globals_,
            agreed=False,
            node=node,
            end_reason=st.ending or "hung_up",
            end_why=st.ending_why or f"hung up by {by}",
        )

    def _finish_with(self, kind: str, t: float, **body: Any) -> None:
        assert self.outcome is None, "a call has exactly one outcome"
        self._flush_quality(t)
        st = self.state
        last = st.turns[-1] if st.turns else None
        self.outcome = self._envelope(
            OUTCOME_SCHEMA,
            t,
            outcome=kind,
            ref=self.ref,
            customer_id=self.customer.id,
            customer_group=self.group,
            campaign=self.campaign_name,
            language=self.language,
            turns=len(st.turns),
            final_emotion=last.emotion.tendency if last else None,
            final_intent=last.intent.tendency if last else None,
            missing=list(dict.fromkeys(st.missing)),
            **body,
        )
        self._messages.append(Message("outcome", self.outcome))

    # --- helpers -------------------------------------------------------------

    def _spoken_key(self, key: str, topic: str | None = None) -> Say:
        """The prompt a flow key names ('opening', 'followup.price') as the caller hears it."""
        if key.startswith("followup."):
            topic = key.split(".", 1)[1]
            return self._spoken("followup", self.campaign.followups[topic], topic)
        return self._spoken(key, self.campaign.prompts[key])

    def _spoken(self, situation: str, p: Prompt, topic: str | None = None) -> Say:
        """The prompt with its slots filled in, as the caller will hear it."""
        values = {"product": self.campaign.product}
        digits = "".join(ch for ch in self._remote or "" if ch.isdigit())
        if len(digits) >= 4:
            values["number_tail"] = digits[-4:]
        personal = bool(slots_in(p.text) & CALL_SLOTS)
        wav = str(p.wav) if p.wav else None
        return Say(situation, render(p.text, values), wav, topic, personal)

    def _say(self, situation: str, t: float) -> Say:
        """A notice that ends the call (poor signal): said whole, whatever the caller says."""
        say = replace_barge_in(self._spoken_key(situation), False)
        self._emit("prompt", t, situation=situation, text=say.text)
        return say

    def _flush_quality(self, t: float) -> None:
        if self.state.pending_quality:
            self._emit("quality", t, samples=self.state.pending_quality)
            self.state.pending_quality = []

    def _envelope(self, schema: str, t: float, **body: Any) -> dict[str, Any]:
        self._seq += 1
        return envelope(
            self._identity, schema, body, call_id=self.call_id, seq=self._seq, ts=_iso(t)
        )

    def _emit(self, event_type: str, t: float, **body: Any) -> None:
        self._messages.append(
            Message("event", self._envelope(EVENT_SCHEMA, t, type=event_type, **body))
        )


def replace_barge_in(say: Say, barge_in: bool) -> Say:
    return dataclasses.replace(say, barge_in=barge_in)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _emotion_json(e: Emotion) -> dict[str, Any]:
    return {"score": e.score, "tendency": e.tendency, "sources": list(e.sources)}


def _intent_json(i: Intent, counts: IntentCounts) -> dict[str, Any]:
    return {
        "value": i.value,
        "tendency": i.tendency,
        "counts": {
            "turns": counts.turns,
            "positive": counts.positive,
            "negative": counts.negative,
            "price": counts.price,
        },
        "normalised": list(i.normalised),
    }


def _factor_json(f: Factor | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "keyword": f.keyword,
        "topic": f.topic,
        "word": f.word,
        "is_topic": f.is_topic,
        "understanding": f.effect,
        "rule": f.rule,
        "unanswered_topics": list(f.understanding.unanswered_topics),
    }
