"""Commands from head office: parse, validate, dispatch, build the reply body.

Pure of MQTT I/O: `CommandRegistry.handle()` takes the command name (from the
topic), the raw payload and the retain flag, and returns the reply body; the
link publishes it. Any bad input becomes an error reply, never an exception.
QoS 1 may deliver a command twice, so a repeated request id gets the first
reply again instead of running the command again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from edgecall.mqtt.topics import COMMAND_NAME

log = logging.getLogger("edgecall.mqtt.commands")

# Commands every appliance understands (the daemon registers handlers for them).
BUILTIN = (
    "ping",
    "reload-config",
    "dial",
    "cancel-redial",
    "dnc-add",
    "dnc-remove",
    "dnc-list",
    "forget",
    "call-stats",
    "intro-revert",
    "variant-restore",
    "list-import",
    "campaign-start",
    "campaign-pause",
    "campaign-resume",
    "campaign-stop",
    "campaign-status",
)
REMEMBERED_REPLIES = 256


@dataclass(frozen=True)
class CommandRequest:
    """A validated command handed to a handler."""

    name: str
    request_id: str
    args: dict[str, Any]


class CommandError(Exception):
    """Raise from a handler to send an error reply with your own code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[CommandRequest], Awaitable[dict[str, Any] | None]]


def load_schema(name: str) -> dict[str, Any]:
    text = resources.files("edgecall").joinpath("schemas", name).read_text(encoding="utf-8")
    return json.loads(text)


class CommandRegistry:
    """Handlers by command name, with the schema their `args` must satisfy."""

    def __init__(self, *, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        schema = load_schema("command.json")
        self._envelope = Draft202012Validator(schema)
        self._arg_schemas: dict[str, dict[str, Any]] = {
            name: schema["$defs"][f"{name}-args"] for name in BUILTIN
        }
        self._handlers: dict[str, tuple[Handler, Draft202012Validator]] = {}
        self._replies: OrderedDict[tuple[str, str], asyncio.Future[dict[str, Any]]] = OrderedDict()
        self.received = 0
        self.errors = 0

    def register(
        self, name: str, handler: Handler, *, args_schema: dict[str, Any] | None = None
    ) -> None:
        """Add or replace the handler of `name`; built-in names use their schema by default."""
        if not COMMAND_NAME.match(name):
            raise ValueError(f"command name {name!r} must match {COMMAND_NAME.pattern}")
        schema = args_schema or self._arg_schemas.get(name)
        if schema is None:
            raise ValueError(f"command {name!r} is not built in: pass args_schema")
        Draft202012Validator.check_schema(schema)
        self._handlers[name] = (handler, Draft202012Validator(schema))

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def handle(self, name: str, payload: bytes, *, retained: bool = False) -> dict[str, Any]:
        """Return the reply body (request_id, command, ok, result | error)."""
        self.received += 1
        try:
            request = self._parse(name, payload, retained)
        except CommandError as exc:
            return self._error(name, _peek_request_id(payload, self.max_bytes), exc)
        key = (name, request.request_id)
        earlier = self._replies.get(key)
        if earlier is not None:
            log.info("command %s %s repeated: sending the first reply", name, request.request_id)
            return await asyncio.shield(earlier)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[key] = future
        while len(self._replies) > REMEMBERED_REPLIES:
            self._replies.popitem(last=False)
        try:
            reply = await self._run(request)
        except BaseException:
            self._replies.pop(key, None)
            future.cancel()
            raise
        future.set_result(reply)
        return reply

    def _parse(self, name: str, payload: bytes, retained: bool) -> CommandRequest:
        if len(payload) > self.max_bytes:
            raise CommandError(
                "too_large", f"command is {len(payload)} bytes; the limit is {self.max_bytes}"
            )
        if retained:
            raise CommandError(
                "retained", "retained commands are refused (they would rerun on every reconnect)"
            )
        try:
            doc = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError("bad_json", f"payload is not UTF-8 JSON: {exc}") from None
        problem = _first_error(self._envelope, doc)
        if problem:
            raise CommandError("invalid", problem)
        if name not in self._handlers:
            if name in BUILTIN:
                raise CommandError("unavailable", f"command {name!r} is not available right now")
            known = ", ".join(self.names)
            raise CommandError("unknown_command", f"unknown command {name!r}; known: {known}")
        args = doc.get("args", {})
        problem = _first_error(self._handlers[name][1], args)
        if problem:
            raise CommandError("invalid", f"args: {problem}")
        return CommandRequest(name=name, request_id=doc["request_id"], args=args)

    async def _run(self, request: CommandRequest) -> dict[str, Any]:
        handler = self._handlers[request.name][0]
        try:
            result = await asyncio.wait_for(handler(request), self.timeout_s)
            json.dumps(result)
        except CommandError as exc:
            return self._error(request.name, request.request_id, exc)
        except TimeoutError:
            return self._error(
                request.name,
                request.request_id,
                CommandError("timeout", f"no result within {self.timeout_s:g} s"),
            )
        except Exception as exc:
            log.exception("command %s %s failed", request.name, request.request_id)
            return self._error(
                request.name,
                request.request_id,
                CommandError("handler_error", f"{type(exc).__name__}: {exc}"),
            )
        return {
            "request_id": request.request_id,
            "command": request.name,
            "ok": True,
            "result": result or {},
        }

    def _error(self, name: str, request_id: str | None, exc: CommandError) -> dict[str, Any]:
        self.errors += 1
        log.warning("command %s (request %s) refused: %s: %s", name, request_id, exc.code, exc)
        return {
            "request_id": request_id,
            "command": name,
            "ok": False,
            "error": {"code": exc.code, "message": exc.message},
        }


def _first_error(validator: Draft202012Validator, doc: Any) -> str | None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    where = "/".join(str(p) for p in err.absolute_path)
    return f"{where or '(top)'}: {err.message}"[:500]


def _peek_request_id(payload: bytes, max_bytes: int) -> str | None:
    """Echo the request id even in an error reply when it can be read safely."""
    if len(payload) > max_bytes:
        return None
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    rid = doc.get("request_id") if isinstance(doc, dict) else None
    return rid if isinstance(rid, str) and 0 < len(rid) <= 128 else None
