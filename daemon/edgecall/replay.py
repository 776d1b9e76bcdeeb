"""`edgecall replay FILE`: run a scripted call through the rule engine.

A replay file is YAML (validated like config.yaml, errors with file and line):

    call_id: demo-transfer-zh        # optional; default: the file name
    direction: outbound              # or inbound
    remote: "+8613800000001"         # the caller's number (SMS goes here)
    campaign: retail-zh              # optional; default: the config's default
    language: zh                     # optional; default: the campaign's
    start: "2026-05-04T09:00:00Z"    # optional wall-clock time of second 0
    quality:                         # per-second samples in dBm, null = missing
      source: sip_header
      dbm: [-95, -96, null, -97]
    turns:
      - at_s: 4
        caller: 这个套餐多少钱？
        acoustic: 0.2                # optional acoustic emotion score in [-1, 1]
        reply: 我们的价格很优惠。     # optional: what the agent actually said
      - {at_s: 12, silence: true}    # rules.conversation.silence_s passed without a sound
      - {at_s: 15, dtmf: "0"}        # the caller pressed a key
    sms: sent                        # result of a poor-signal SMS: sent or failed
    transfer: ok                     # result of a transfer: ok or failed
    hangup: {by: caller, at_s: 30}

Quality samples and turns are merged by time. The printed JSON lines are the
messages the appliance would publish; the last one is the outcome. On stderr,
`flow_path` shows each node the call went through and why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgecall.config.base import ConfigModel, FieldError
from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from edgecall.messages import Identity, encode
from edgecall.rules.scene import SceneClassifier
from edgecall.rules.session import Action, CallSession, HangUp, Lexicons, Message, Transfer


class ReplayQuality(ConfigModel):
    source: str = Field("replay", description="Source name recorded with each sample.")
    dbm: list[float | None] = Field(
        default_factory=list, description="One sample per second from second 0; null = missing."
    )


class ReplayTurn(ConfigModel):
    at_s: float = Field(..., ge=0, description="Second at which the utterance ended.")
    caller: str | None = Field(None, description="What the caller said; empty = ASR heard nothing.")
    acoustic: float | None = Field(
        None, ge=-1, le=1, description="Acoustic emotion score in [-1, 1], if a model gave one."
    )
    reply: str | None = Field(
        None, description="What the agent actually replied, if not the script."
    )
    silence: bool = Field(
        False, description="Instead of words: the caller stayed silent (silence_s passed)."
    )
    dtmf: str | None = Field(
        None, pattern=r"^[0-9*#]$", description="Instead of words: the key the caller pressed."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ReplayTurn:
        kinds = [self.caller is not None, self.silence, self.dtmf is not None]
        if sum(kinds) > 1:
            raise ValueError("a turn is one of: caller words, silence: true, dtmf")
        return self


class ReplayHangup(ConfigModel):
    by: Literal["caller", "appliance", "network"] = Field(..., description="Who hung up.")
    at_s: float = Field(..., ge=0, description="Second of the hang-up.")


class ReplayCall(ConfigModel):
    call_id: str | None = Field(None, description="Call id; default: the file's name.")
    direction: Literal["inbound", "outbound"] = Field("outbound", description="Call direction.")
    remote: str | None = Field(None, description="The caller's number.")
    campaign: str | None = Field(None, description="Campaign; default: the config's default.")
    language: str | None = Field(None, description="Language; default: the campaign's.")
    start: datetime = Field(
        default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        description="Wall-clock time of second 0 (UTC if no offset is given).",
    )
    quality: ReplayQuality = Field(
        default_factory=ReplayQuality, description="Per-second quality trace."
    )
    turns: list[ReplayTurn] = Field(default_factory=list, description="Caller turns in order.")
    sms: Literal["sent", "failed"] = Field("sent", description="Result of a poor-signal SMS.")
    transfer: Literal["ok", "failed"] = Field("ok", description="Result of a transfer.")
    hangup: ReplayHangup = Field(..., description="How the call ends.")

    @model_validator(mode="after")
    def _ordered(self) -> ReplayCall:
        for i in range(1, len(self.turns)):
            if self.turns[i].at_s < self.turns[i - 1].at_s:
                raise FieldError(("turns", i, "at_s"), "turns must be in time order")
        if self.turns and self.hangup.at_s < self.turns[-1].at_s:
            raise FieldError(("hangup", "at_s"), "hang-up comes before the last turn")
        return self


def load_replay(path: Path) -> ReplayCall:
    return load_model(path, ReplayCall)


def run_replay(
    call: ReplayCall,
    cfg: EdgecallConfig,
    *,
    call_id: str,
    lexicons: Lexicons | None = None,
    classifier: SceneClassifier | None = None,
) -> tuple[list[Message], list[Action]]:
    """Feed a replay through a CallSession; returns its messages and the actions taken."""
    t0 = call.start.replace(tzinfo=call.start.tzinfo or UTC).timestamp()
    identity = Identity(cfg.appliance.site_id, cfg.appliance.appliance_id)
    session = CallSession(
        cfg,
        lexicons or Lexicons(cfg),
        identity,
        call_id=call_id,
        direction=call.direction,
        remote=call.remote,
        t=t0,
        language=call.language,
        campaign=call.campaign,
        classifier=classifier,
    )
    actions: list[Action] = list(session.opening(t0))
    timeline: list[tuple[float, int, object]] = [
        (float(i + 1), 0, ("quality", dbm)) for i, dbm in enumerate(call.quality.dbm)
    ]
    timeline += [(turn.at_s, 1, ("turn", turn)) for turn in call.turns]
    timeline.sort(key=lambda e: (e[0], e[1]))
    for at_s, _, (what, item) in timeline:
        if at_s > call.hangup.at_s or session.state.hangup is not None:
            break
        t = t0 + at_s
        if what == "quality":
            step = session.quality(item, t, call.quality.source)
        elif item.silence:
            step = session.silence(t)
        elif item.dtmf is not None:
            step = session.key(item.dtmf, t)
        else:
            step = session.caller_turn(item.caller, t, acoustic=item.acoustic, reply=item.reply)
        actions += step
        _carry_out(session, step, call, t)
    if session.state.hangup is None and not session.ended:
        session.hangup(call.hangup.by, t0 + call.hangup.at_s)
    session.finish(t0 + call.hangup.at_s)
    return session.take_messages(), actions


def _carry_out(session: CallSession, actions: list[Action], call: ReplayCall, t: float) -> None:
    """Play the part of the telephony layer: transfers, hang-ups and SMS happen at once."""
    for action in actions:
        if isinstance(action, Transfer):
            session.transfer_result(call.transfer == "ok", f"replayed transfer {call.transfer}", t)
        elif isinstance(action, HangUp):
            session.hangup("appliance", t, action.reason)
            session.sms_result(call.sms == "sent", f"replayed SMS {call.sms}", t)


def format_messages(messages: list[Message]) -> str:
    """JSON lines, one message each, with the topic kind for readers of the output."""
    return "\n".join(
        encode(
            {"kind": m.kind, **({"agent": m.agent} if m.agent else {}), "message": m.body}
        ).decode()
        for m in messages
    )


def flow_path(messages: list[Message]) -> list[str]:
    """One line per flow step: the node the call is at afterwards, what moved it and why."""
    lines, node = [], None
    for m in messages:
        body = m.body
        if m.kind != "event" or body.get("type") != "flow":
            continue
        arrow = f"{node} -> {body['node']}" if node and node != body["node"] else body["node"]
        said = ", ".join(body["prompts"])
        answer = f"{body['answer']}: " if body.get("answer") else ""
        end = f" [ends: {body['ending']}]" if body.get("ending") else ""
        lines.append(f"{arrow} ({answer}{body['why']}) says {said}{end}")
        node = body["node"]
    return lines


def summary(outcome: dict) -> str:
    keys = (
        "outcome",
        "agreed",
        "end_reason",
        "node",
        "scene",
        "decided_by",
        "delay_s",
        "due",
        "factor",
        "target",
        "reason",
        "sms",
        "missing",
    )
    shown = {k: outcome[k] for k in keys if outcome.get(k) not in (None, [], {})}
    return json.dumps(shown, ensure_ascii=False)
