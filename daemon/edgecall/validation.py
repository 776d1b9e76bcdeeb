"""Validate messages against the JSON Schemas shipped in `edgecall/schemas/`.

Head-office integrators get the same files (docs/mqtt.md links them); tests run
every message the engine emits through them, so the schemas cannot drift from
the code.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_FILES = {
    "edgecall.event/1": "event.json",
    "edgecall.outcome/1": "outcome.json",
    "edgecall.agent-prompt/1": "agent-prompt.json",
    "edgecall.sms-request/1": "sms-request.json",
    "edgecall.config-report/1": "config-report.json",
    "edgecall.dial-skipped/1": "dial-skipped.json",
    "edgecall.work-rejected/1": "work-rejected.json",
    "edgecall.intro-change/1": "intro-change.json",
    "edgecall.variant-retired/1": "variant-retired.json",
    "edgecall.group-script/1": "group-script.json",
    "edgecall.reply-model-trained/1": "reply-model-trained.json",
    "edgecall.campaign-progress/1": "campaign-progress.json",
}
_BASE = "https://edgecall.dev/schemas/"


@cache
def _registry() -> Registry:
    resources = []
    for entry in (files("edgecall") / "schemas").iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text("utf-8"))
            resources.append((_BASE + entry.name, Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def validator(filename: str) -> Draft202012Validator:
    schema = _registry().get_or_retrieve(_BASE + filename).value.contents
    return Draft202012Validator(
        schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(message: dict[str, Any]) -> list[str]:
    """Every way `message` violates the schema its `schema` field names (empty: valid)."""
    filename = SCHEMA_FILES.get(message.get("schema", ""))
    if filename is None:
        return [f"unknown schema {message.get('schema')!r}"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(filename).iter_errors(message)
    ]
