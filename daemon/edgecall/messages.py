"""The envelope every message to head office carries.

Each message is one JSON object with a versioned `schema` name, the appliance's
identity, the call it belongs to (if any), a per-call monotonic `seq`, a UTC
timestamp and a unique `message_id` that stays the same across retries so
subscribers can deduplicate. JSON Schemas live in `edgecall/schemas/`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENT_SCHEMA = "edgecall.event/1"
OUTCOME_SCHEMA = "edgecall.outcome/1"


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: Any) -> float | None:
    """A message's ISO 8601 time ('...Z') as seconds since the epoch; None if it is none."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def new_message_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Identity:
    site_id: str
    appliance_id: str


def envelope(
    identity: Identity,
    schema: str,
    body: dict[str, Any],
    *,
    call_id: str | None = None,
    seq: int | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """Wrap `body` in the common envelope; body keys never override envelope keys."""
    head: dict[str, Any] = {
        "schema": schema,
        "message_id": new_message_id(),
        "site_id": identity.site_id,
        "appliance_id": identity.appliance_id,
        "ts": ts or utc_now_iso(),
    }
    if call_id is not None:
        head["call_id"] = call_id
    if seq is not None:
        head["seq"] = seq
    clash = head.keys() & body.keys()
    if clash:
        raise ValueError(f"body uses envelope keys: {sorted(clash)}")
    return {**head, **body}


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Chinese text stays readable, not \\u-escaped)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
