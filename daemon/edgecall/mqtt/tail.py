"""`edgecall tail`: watch one appliance's MQTT traffic live, for technicians.

Subscribes to `<prefix>/#` with its own client id (so it never displaces the
appliance) and prints one readable line per message: status, events, outcomes,
prompts, stats, commands and replies. `--count`/`--timeout` make it usable in
scripts, tests and demos. Also runnable as `python -m edgecall.mqtt.tail`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from pydantic import ValidationError

from edgecall.config.appliance import ApplianceConfig
from edgecall.config.base import SecretError
from edgecall.config.mqtt import MqttConfig, MqttTlsConfig
from edgecall.mqtt.link import tls_context
from edgecall.mqtt.topics import TopicError, Topics, default_prefix

ENVELOPE_KEYS = ("schema", "message_id", "site_id", "appliance_id", "ts", "call_id", "seq")
LABELS = {
    "status": "STATUS",
    "stats": "STATS",
    "outcomes": "OUTCOME",
    "events": "EVENT",
    "prompts": "PROMPT",
    "command": "CMD",
    "reply": "REPLY",
    "other": "OTHER",
}
MAX_LINE = 400


class TailError(Exception):
    """A user mistake (bad option or config); printed without a traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="config.yaml to take broker and ids from")
    parser.add_argument("--host", help="broker host (default: config, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="broker port (default: config, else 1883)")
    parser.add_argument("--prefix", help="topic prefix (default edgecall/<site>/<appliance>)")
    parser.add_argument("--site", help="site id, to build the default prefix")
    parser.add_argument("--appliance", help="appliance id, to build the default prefix")
    parser.add_argument("--username", help="broker user name")
    parser.add_argument("--password-env", metavar="VAR", help="environment variable with password")
    parser.add_argument("--ca-file", type=Path, help="CA certificate: connect with TLS")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    parser.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds")
    parser.add_argument("--no-stats", action="store_true", help="hide the periodic stats")
    parser.add_argument("--raw", action="store_true", help="print topic and raw payload")


def main(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 fewer than --count messages before --timeout, 2 usage/connection."""
    try:
        settings = resolve(args)
    except TailError as exc:
        print(f"edgecall tail: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_tail(settings, args))
    except KeyboardInterrupt:
        return 0


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Merge --config with the command-line options (options win)."""
    mqtt = MqttConfig()
    site, appliance = args.site, args.appliance
    if args.config is not None:
        mqtt, app = _load_config(args.config)
        site = site or (app.site_id if app else None)
        appliance = appliance or (app.appliance_id if app else None)
    prefix = args.prefix or mqtt.topic_prefix
    if not prefix:
        if not (site and appliance):
            raise TailError("give --prefix, or --site and --appliance, or --config")
        prefix = default_prefix(site, appliance)
    try:
        topics = Topics(prefix)
    except TopicError as exc:
        raise TailError(str(exc)) from None
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise TailError(f"environment variable {args.password_env} is not set")
    elif mqtt.password is not None and not args.username:
        try:
            password = mqtt.password.resolve().get_secret_value()
        except SecretError as exc:
            raise TailError(str(exc)) from None
    tls = mqtt.tls
    if args.ca_file is not None:
        update = {"ca_file": args.ca_file}
        tls = MqttTlsConfig(ca_file=args.ca_file) if tls is None else tls.model_copy(update=update)
    try:
        context = tls_context(tls) if tls else None
    except ValueError as exc:
        raise TailError(str(exc)) from None
    return {
        "host": args.host or mqtt.host,
        "port": args.port or mqtt.port,
        "username": args.username or mqtt.username,
        "password": password,
        "tls_context": context,
        "topics": topics,
    }


def _load_config(path: Path) -> tuple[MqttConfig, ApplianceConfig | None]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TailError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise TailError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise TailError(f"{path}: expected a mapping at the top")
    mqtt = _section(path, "mqtt", MqttConfig, doc.get("mqtt") or {})
    app = (
        _section(path, "appliance", ApplianceConfig, doc["appliance"])
        if "appliance" in doc
        else None
    )
    return mqtt, app


def _section(path: Path, name: str, model: type[Any], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (name, *first["loc"]))
        raise TailError(f"{path}: {where}: {first['msg']}") from None


async def _tail(settings: dict[str, Any], args: argparse.Namespace) -> int:
    topics: Topics = settings["topics"]
    shown = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout if args.timeout else None
    try:
        async with aiomqtt.Client(
            settings["host"],
            settings["port"],
            identifier=f"edgecall-tail-{uuid.uuid4().hex[:8]}",
            username=settings["username"],
            password=settings["password"],
            tls_context=settings["tls_context"],
            clean_session=True,
        ) as client:
            await client.subscribe(topics.everything, qos=1)
            print(f"# watching {topics.everything} on {settings['host']}:{settings['port']}",
                  file=sys.stderr, flush=True)  # fmt: skip
            messages = aiter(client.messages)
            while args.count is None or shown < args.count:
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    break
                try:
                    message = await asyncio.wait_for(anext(messages), left)
                except TimeoutError:
                    break
                topic = str(message.topic)
                kind, _ = topics.classify(topic)
                if args.no_stats and kind == "stats":
                    continue
                payload = message.payload if isinstance(message.payload, bytes) else b""
                if args.raw:
                    line = f"{topic} {payload.decode('utf-8', 'replace')}"
                else:
                    line = format_message(topics, topic, payload, bool(message.retain))
                print(line, flush=True)
                shown += 1
    except aiomqtt.MqttError as exc:
        print(
            f"edgecall tail: cannot watch {settings['host']}:{settings['port']}: {exc}",
            file=sys.stderr,
        )
        return 2
    if args.count is not None and shown < args.count:
        print(f"edgecall tail: {shown} of {args.count} messages before timeout", file=sys.stderr)
        return 1
    return 0


def format_message(
    topics: Topics, topic: str, payload: bytes, retained: bool, now: datetime | None = None
) -> str:
    """One line per message: time, label, the interesting fields."""
    kind, detail = topics.classify(topic)
    stamp = (now or datetime.now()).strftime("%H:%M:%S.%f")[:-3]
    head = f"{stamp} {LABELS[kind]:<7}"
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{head} {topic} ({len(payload)} bytes, not JSON)"
    if not isinstance(doc, dict):
        return _cut(f"{head} {topic} {_value(doc)}")
    parts: list[str] = []
    if kind == "events" and doc.get("type") == "flow":
        return _cut(f"{stamp} {'NODE':<7} {_flow_step(doc)}")
    if kind == "status":
        parts.append(str(doc.get("state", "?")))
        if retained:
            parts.append("(retained)")
    elif kind == "stats":
        parts += _stats_parts(doc)
    elif kind in ("command", "reply"):
        parts += [str(detail), f"request={doc.get('request_id')}"]
        if kind == "reply":
            if doc.get("ok"):
                parts += ["ok", _fields(doc.get("result") or {})]
            else:
                err = doc.get("error") or {}
                parts += [f"ERROR {err.get('code')}: {err.get('message')}"]
        else:
            parts.append(_fields(doc.get("args") or {}))
    else:
        if kind == "prompts":
            parts.append(f"ext={detail}")
        if "call_id" in doc:
            parts.append(f"call={doc['call_id']}")
        if "seq" in doc:
            parts.append(f"seq={doc['seq']}")
        if kind == "other":
            parts.append(topic)
        parts.append(_fields({k: v for k, v in doc.items() if k not in ENVELOPE_KEYS}))
    return _cut(" ".join([head, *[p for p in parts if p]]))


def _flow_step(doc: dict[str, Any]) -> str:
    """A flow event as a technician reads a call's path: where it is, why, what is said."""
    answer = f"{doc['answer']}: " if doc.get("answer") else ""
    said = ",".join(doc.get("prompts") or [])
    end = f" ENDS {doc['ending']}" if doc.get("ending") else ""
    return (
        f"call={doc.get('call_id')} seq={doc.get('seq')} {doc.get('node')} "
        f"({answer}{doc.get('why', '')}) says {said}{end}"
    )


def _stats_parts(doc: dict[str, Any]) -> list[str]:
    link = doc.get("link") or {}
    box = doc.get("outbox") or {}
    dropped = sum((box.get("dropped") or {}).values())
    parts = [f"link={link.get('state')}", f"outbox={box.get('depth')}", f"dropped={dropped}"]
    if box.get("disk_full"):
        parts.append("DISK-FULL")
    if box.get("corrupt_files"):
        parts.append(f"corrupt-files={len(box['corrupt_files'])}")
    for key in ("active_calls", "registration"):
        if key in doc:
            parts.append(f"{key}={_value(doc[key])}")
    return parts


def _fields(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cut(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="edgecall tail", description=__doc__)
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
