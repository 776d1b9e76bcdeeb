"""A campaign's conversation as a flow of nodes (the `flow:` of a campaign).

Each node says one of the campaign's prompts (or one of several variants) and
names where each kind of answer leads. What callers do at any node (a question
about a topic, silence, "who is this?", "stop calling me", DTMF 0, a stated
reason to call back) is handled by the engine in `edgecall.rules.flow`, not
repeated in every node. A node with `end` finishes the call after its prompt.

The graph is checked when the config loads, so a field technician hears about
a typo'd node name, a node nobody can reach or a loop with no way out from
`check-config`, with the line, not from a caller stuck in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecall.config.base import ConfigModel, FieldError, FieldErrors

Answer = Literal["yes", "no", "interested", "not_interested", "other"]
End = Literal["sale", "declined"]
# Built-in rules a node may hand over to, in call-rules.md precedence. Poor signal is not
# in the list: it ends any call, at any node, whatever the node says.
Rule = Literal["transfer", "stated_reason", "factor", "soothing"]
RULES: tuple[Rule, ...] = ("transfer", "stated_reason", "factor", "soothing")


class FlowNode(ConfigModel):
    say: list[str] = Field(
        ...,
        min_length=1,
        description="The prompt (a key of the campaign's prompts) said on entering the node; "
        "several keys are variants of it, one of which each call hears.",
    )
    reask: str | None = Field(
        None,
        description="Prompt key said after the robot answered a side question (a topic, "
        "'who is this?') at this node, to bring the caller back to the node's question; "
        "absent: the node's own prompt is not repeated.",
    )
    on: dict[Answer, str] = Field(
        default_factory=dict,
        description="Where each answer leads (a node name): yes, no, interested (purchase "
        "intent turned positive), not_interested (turned negative), other (anything else "
        "the caller said). An answer not listed keeps the call at this node.",
    )
    end: End | None = Field(
        None,
        description="This node ends the call after its prompt: 'sale' (the caller confirmed; "
        "outcome completed, agreed) or 'declined' (outcome failed, with its factor).",
    )
    rules: list[Rule] = Field(
        default_factory=lambda: list(RULES),
        description="Built-in rules that may take over at this node (transfer, stated_reason, "
        "factor, soothing); poor signal always applies.",
    )

    @field_validator("say", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _end_or_answers(self) -> FlowNode:
        if self.end is not None and self.on:
            raise FieldError(("on",), "an end node cannot lead anywhere: remove 'on' or 'end'")
        return self


class Flow(ConfigModel):
    start: str = Field(..., description="The node the call begins at (said once answered).")
    declined: str = Field(
        ...,
        description="End node a call goes to when the refusal persists (intent negative for "
        "rules.flow.refusal_turns turns) at a node with no 'no' answer of its own.",
    )
    nodes: dict[str, FlowNode] = Field(..., min_length=1, description="The nodes, by name.")

    @model_validator(mode="after")
    def _graph(self) -> Flow:
        errors = list(self.graph_errors())
        if errors:
            raise FieldErrors(errors)
        return self

    def graph_errors(self) -> Iterable[FieldError]:
        """Dangling names, unreachable nodes and loops that can never reach an end."""
        names = set(self.nodes)
        dangling = False
        if self.start not in names:
            dangling = True
            yield FieldError(("start",), f"no node {self.start!r}{_known(names)}")
        if self.declined not in names:
            dangling = True
            yield FieldError(("declined",), f"no node {self.declined!r}{_known(names)}")
        elif self.nodes[self.declined].end is None:
            yield FieldError(("declined",), f"node {self.declined!r} has no 'end'")
        for name, node in self.nodes.items():
            for answer, target in node.on.items():
                if target not in names:
                    dangling = True
                    yield FieldError(
                        ("nodes", name, "on", answer), f"no node {target!r}{_known(names)}"
                    )
        if dangling:
            return  # reachability means little until every name resolves
        edges = {n: set(node.on.values()) for n, node in self.nodes.items()}
        reachable = _closure({self.start}, edges)
        # a persistent refusal reaches the declined node from any node the caller can be at
        reachable |= {self.declined}
        for name in self.nodes:
            if name not in reachable:
                yield FieldError(("nodes", name), f"node {name!r} is never reached from the start")
        ends = {n for n, node in self.nodes.items() if node.end is not None}
        backwards: dict[str, set[str]] = {n: set() for n in self.nodes}
        for source, targets in edges.items():
            for target in targets:
                backwards[target].add(source)
        can_end = _closure(ends, backwards)
        for name in sorted(reachable - can_end, key=list(self.nodes).index):
            yield FieldError(
                ("nodes", name),
                f"from node {name!r} no answer ever leads to an end node (a loop without exit)",
            )


def _closure(seeds: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(seeds), list(seeds)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _known(names: set[str]) -> str:
    return "; nodes: " + ", ".join(sorted(names)) if names else ""
