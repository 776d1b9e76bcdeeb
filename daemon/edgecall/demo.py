"""`make demo`: show a newcomer the appliance's decisions on this machine.

Replays the bundled example calls (tests/data/calls) through the rule engine
and prints, per call, the caller's turns with their emotion and intent, the
decisions taken, and the one outcome head office receives.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgecall.cli import load_config
from edgecall.config.loader import ConfigError
from edgecall.replay import load_replay, run_replay
from edgecall.rules.session import Lexicons

REPO = Path(__file__).resolve().parents[2]
TENDENCY = {-1: "negative", 0: "neutral", 1: "positive", None: "-"}


def describe(event: dict) -> str | None:
    kind = event.get("type")
    if kind == "turn":
        e, i = event["emotion"], event["intent"]
        factor = f"  factor: {event['factor']['keyword']}" if event["factor"] else ""
        return (
            f"  caller: {event['utterance'] or '(nothing heard)'}\n"
            f"    emotion {TENDENCY[e['tendency']]} ({e['score']:+.2f}), "
            f"intent {TENDENCY[i['tendency']]} ({i['value']:.2f}){factor}\n"
            + (
                f"  robot [{event['reply']['situation']}]: {event['reply']['text']}"
                if event["reply"]["scripted"]
                else f"  agent (unscripted): {event['reply']['text']}"
            )
        )
    if kind == "prompt":
        return f"  robot [{event['situation']}]: {event['text']}"
    if kind in ("poor_signal", "transfer.requested", "sms.requested", "hangup"):
        detail = {k: v for k, v in event.items() if k in ("window", "target", "route", "by")}
        return f"  ** {kind} {detail}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    config_path = Path(args[0]) if args else REPO / "config.yaml"
    calls = sorted((REPO / "tests" / "data" / "calls").glob("*.yaml"))
    try:
        cfg = load_config(config_path)
        replays = [(p, load_replay(p)) for p in calls]
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    lexicons = Lexicons(cfg)
    for path, call in replays:
        messages, _ = run_replay(call, cfg, call_id=path.stem, lexicons=lexicons)
        print(f"\n=== {path.name} ({call.direction}, {call.remote})")
        for m in messages:
            line = describe(m.body) if m.kind == "event" else None
            if line:
                print(line)
        outcome = messages[-1].body
        shown = {
            k: v
            for k, v in outcome.items()
            if k in ("outcome", "scene", "delay_s", "due", "factor", "target", "sms")
        }
        print(f"  => outcome: {shown}")
    print(f"\n{len(replays)} calls replayed with {config_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
