"""The MQTT topic tree of one appliance, built from one prefix.

Kept in one place so the daemon, `edgecall tail`, the tests and `docs/mqtt.md`
agree on every topic name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# A topic level we build from data (call id, extension, command name) must not
# contain MQTT wildcards or separators, or a subscriber could be confused.
_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
# Characters a call's topic level keeps as they are; others are percent-encoded.
_CALL_SAFE = re.compile(r"[^A-Za-z0-9_.@:-]")
_MAX_LEVEL = 128
COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class TopicError(ValueError):
    """A value cannot be used as one level of a topic."""


def default_prefix(site_id: str, appliance_id: str) -> str:
    return f"edgecall/{site_id}/{appliance_id}"


def check_level(value: str, what: str) -> str:
    if not _LEVEL.match(value):
        raise TopicError(
            f"{what} {value!r} cannot be a topic level (letters, digits, '_.@:-', max 128)"
        )
    return value


def call_level(call_id: str) -> str:
    """A call id as one topic level, whatever the PBX put in its SIP Call-ID.

    Call-IDs may start with '-' or hold '/', '+', '#' or spaces; such characters are
    percent-encoded ('/' -> '%2F'), and an id too long for a level keeps its start plus
    a hash. The message's own `call_id` field always carries the id unchanged.
    """
    if not call_id:
        raise TopicError("call id is empty")
    level = _CALL_SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), call_id)
    if len(level) > _MAX_LEVEL:
        digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
        level = f"{level[: _MAX_LEVEL - 17]}~{digest}"
    return level


def check_prefix(prefix: str) -> str:
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise TopicError(f"topic prefix {prefix!r} must be non-empty levels joined by '/'")
    if any(c in prefix for c in "+#\x00"):
        raise TopicError(f"topic prefix {prefix!r} must not contain '+', '#' or NUL")
    return prefix


@dataclass(frozen=True)
class Topics:
    """Every topic under `prefix`; see docs/mqtt.md for what each carries."""

    prefix: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def stats(self) -> str:
        return f"{self.prefix}/stats"

    @property
    def outcomes(self) -> str:
        return f"{self.prefix}/outcomes"

    @property
    def commands(self) -> str:
        """Subscription filter for incoming commands (one level: the name)."""
        return f"{self.prefix}/cmd/+"

    @property
    def everything(self) -> str:
        return f"{self.prefix}/#"

    def events(self, call_id: str) -> str:
        return f"{self.prefix}/calls/{call_level(call_id)}/events"

    def prompts(self, extension: str) -> str:
        return f"{self.prefix}/agents/{check_level(extension, 'extension')}/prompts"

    def command(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}"

    def reply(self, name: str) -> str:
        return f"{self.prefix}/cmd/{name}/reply"

    def classify(self, topic: str) -> tuple[str, str | None]:
        """Map a topic under this prefix to (kind, detail), e.g. ('events', call_id).

        Kinds: status, stats, outcomes, events, prompts, command, reply, other.
        """
        if not topic.startswith(self.prefix + "/"):
            return ("other", None)
        rest = topic[len(self.prefix) + 1 :].split("/")
        match rest:
            case ["status"]:
                return ("status", None)
            case ["stats"]:
                return ("stats", None)
            case ["outcomes"]:
                return ("outcomes", None)
            case ["calls", call_id, "events"]:
                return ("events", call_id)
            case ["agents", ext, "prompts"]:
                return ("prompts", ext)
            case ["cmd", name]:
                return ("command", name)
            case ["cmd", name, "reply"]:
                return ("reply", name)
        return ("other", None)
