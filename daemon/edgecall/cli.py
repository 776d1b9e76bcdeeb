"""The `edgecall` command.

Exit codes: 0 success, 1 runtime failure, 2 bad input (config, replay file,
arguments). User mistakes print `FILE:LINE:COL: field: message`, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from edgecall import __version__
from edgecall.config.base import SecretError, SecretRef
from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig
from edgecall.mqtt import tail

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
SYSTEM_CONFIG = Path("/etc/edgecall/config.yaml")


def default_config_path() -> Path:
    """$EDGECALL_CONFIG, else /etc/edgecall/config.yaml if present, else ./config.yaml."""
    if os.environ.get("EDGECALL_CONFIG"):
        return Path(os.environ["EDGECALL_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else Path("config.yaml")


def load_config(path: Path) -> EdgecallConfig:
    return load_model(path, EdgecallConfig)


def _secrets(cfg: EdgecallConfig) -> list[tuple[str, SecretRef]]:
    found = [("sip.password", cfg.sip.password)]
    if cfg.mqtt.password is not None:
        found.append(("mqtt.password", cfg.mqtt.password))
    return found


def cmd_check_config(args: argparse.Namespace) -> int:
    path: Path = args.path or default_config_path()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return EXIT_BAD_INPUT
    for name, ref in _secrets(cfg):
        try:
            ref.resolve()
        except SecretError as exc:
            print(f"{path}: warning: {name}: {exc} (needed at run time)", file=sys.stderr)
    if not args.no_model_files and _report_model_files(cfg, path):
        return EXIT_BAD_INPUT
    print(
        f"{path}: OK (site {cfg.appliance.site_id}, appliance {cfg.appliance.appliance_id}; "
        f"{len(cfg.languages)} languages, {len(cfg.topics)} topics, "
        f"{len(cfg.campaigns)} campaigns)"
    )
    print(
        f"{path}: capacity on this machine: {cfg.sip.max_concurrent_calls} calls at once, "
        f"{cfg.models.workers} analysis worker(s)"
    )
    return EXIT_OK


def _report_model_files(cfg: EdgecallConfig, path: Path) -> int:
    """Print what is wrong with the model files on this machine; the number of errors."""
    from edgecall.config.loader import dotted, position, read_yaml
    from edgecall.config.model_files import check_model_files
    from edgecall.speech.report import check_prompts, check_voices

    base_dir = path.resolve().parent
    findings = check_model_files(cfg, base_dir)
    voices, voice_findings = check_voices(cfg, base_dir)
    prompts, prompt_findings = check_prompts(cfg, base_dir, voices)
    findings += voice_findings + prompt_findings
    _print_prompt_table(prompts)
    if not findings:
        return 0
    tree = read_yaml(path)
    errors = 0
    for f in findings:
        line, col = position(tree, f.loc)
        kind = "warning: " if f.warning else ""
        print(f"{path}:{line}:{col}: {kind}{dotted(f.loc)}: {f.message}", file=sys.stderr)
        errors += not f.warning
    if errors:
        print(f"{path}: {errors} error(s) in model files", file=sys.stderr)
    return errors


def _print_prompt_table(prompts: list) -> None:
    """Per campaign and language: which prompts are recorded, which synthesized and by whom."""
    for campaign in dict.fromkeys(p.campaign for p in prompts):
        rows = [p for p in prompts if p.campaign == campaign]
        print(f"campaign {campaign} ({rows[0].language}):")
        width = max(len(p.name) for p in rows)
        for p in rows:
            print(f"  {p.name:<{width}}  {p.spoken_by}")


def cmd_replay(args: argparse.Namespace) -> int:
    from edgecall.replay import flow_path, format_messages, load_replay, run_replay, summary
    from edgecall.rules.session import Lexicons

    config_path: Path = args.config or default_config_path()
    try:
        cfg = load_config(config_path)
        calls = [(f, load_replay(f)) for f in args.files]
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_BAD_INPUT
    classifier = None
    if args.scene_model:
        from edgecall.inference.scene import load_scene_classifier

        classifier = load_scene_classifier(args.scene_model)
    lexicons = Lexicons(cfg)
    for path, call in calls:
        messages, _ = run_replay(
            call, cfg, call_id=call.call_id or path.stem, lexicons=lexicons, classifier=classifier
        )
        print(format_messages(messages), flush=True)
        if not args.quiet:
            for line in flow_path(messages):
                print(f"{path}: {line}", file=sys.stderr)
        outcome = next(m.body for m in messages if m.kind == "outcome")
        print(f"{path}: {summary(outcome)}", file=sys.stderr)
    return EXIT_OK


def _state_dir(cfg: EdgecallConfig, config_path: Path) -> Path:
    d = cfg.storage.state_dir
    return d if d.is_absolute() else config_path.resolve().parent / d


def _config_or_exit(args: argparse.Namespace) -> tuple[EdgecallConfig, Path] | int:
    path: Path = args.config or default_config_path()
    try:
        return load_config(path), path
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_BAD_INPUT


def _history_or_exit(args: argparse.Namespace, command: str) -> tuple[Any, Path, Any] | int:
    """(config, its state dir, the call history) for `command`, or the exit code."""
    from edgecall.history import History, HistoryError

    loaded = _config_or_exit(args)
    if isinstance(loaded, int):
        return loaded
    cfg, path = loaded
    state = _state_dir(cfg, path)
    try:
        history = History(state / cfg.storage.history_file, keep_days=cfg.storage.history_days)
    except HistoryError as exc:
        print(f"edgecall {command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return cfg, state, history


def cmd_forget(args: argparse.Namespace) -> int:
    import asyncio

    from edgecall.dialer import DIALS_FILE, DialQueue
    from edgecall.dnc import normalise
    from edgecall.mqtt.outbox import Outbox
    from edgecall.privacy import forget

    try:
        normalise(args.number)
    except ValueError as exc:
        print(f"edgecall forget: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    opened = _history_or_exit(args, "forget")
    if isinstance(opened, int):
        return opened
    cfg, state, history = opened

    async def erase() -> dict[str, int]:
        outbox = await Outbox.for_config(cfg.mqtt.outbox, state)
        dials = DialQueue(state / DIALS_FILE)
        try:
            return await forget(args.number, history=history, dials=dials, outbox=outbox)
        finally:
            dials.close()
            await outbox.close()
            history.close()

    erased = asyncio.run(erase())
    print(
        f"{args.number}: erased {erased['calls']} call(s) from the history, "
        f"{erased['dial_items']} queued dial(s), {erased['queued_messages']} unsent "
        "message(s); the do-not-call list keeps the number if it is on it"
    )
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    opened = _history_or_exit(args, "stats")
    if isinstance(opened, int):
        return opened
    _, _, history = opened
    try:
        summary = history.summary(args.campaign)
    finally:
        history.close()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"call history of the last {summary['kept_days']} days")
    if not summary["campaigns"]:
        print("  no calls yet")
    for name, c in summary["campaigns"].items():
        outcomes = ", ".join(f"{o} {n}" for o, n in sorted(c["outcomes"].items()))
        factors = ", ".join(f"{f['topic']} {f['calls']}" for f in c["top_factors"]) or "-"
        print(f"campaign {name}: {c['calls']} calls, {c['agreed']} sales ({c['conversion']:.1%})")
        print(f"  outcomes: {outcomes}")
        print(f"  failed calls' top factors: {factors}")
        for v in c["variants"]:  # counted since the start, beyond the calls kept
            retired = f", retired: {v['retired']}" if v["retired"] else ""
            print(
                f"  {v['node']} variant {v['variant']} ({v['group']}): {v['uses']} calls, "
                f"{v['conversion']:.1%} converted, {v['answer_rate']:.0%} answered{retired}"
            )
    return EXIT_OK


def cmd_campaign_import(args: argparse.Namespace) -> int:
    import time

    from edgecall.customers import ListFileError, read_list

    opened = _history_or_exit(args, "campaign import")
    if isinstance(opened, int):
        return opened
    cfg, _, history = opened
    started = shown = time.monotonic()
    shown_rows = 0

    def progress(report: Any, *, last: bool = False) -> None:
        nonlocal shown, shown_rows
        now = time.monotonic()
        if (now - shown < 1.0 and not last) or report.rows == shown_rows:
            return  # once a second, and once at the end
        shown, shown_rows = now, report.rows
        rate = report.rows / max(now - started, 1e-6)
        print(
            f"{args.file}: {report.rows} rows, {rate:,.0f} rows/s, {len(report.errors)} skipped",
            file=sys.stderr,
        )

    try:
        if args.campaign not in cfg.campaigns:
            known = ", ".join(cfg.campaigns)
            print(
                f"edgecall campaign import: no campaign {args.campaign!r}; campaigns: {known}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        with open(args.file, encoding="utf-8-sig", newline="") as fh:
            report = read_list(
                fh,
                lambda batch: history.store_customers(batch, args.campaign, args.list),
                batch=args.batch,
                progress=progress,
            )
    except ListFileError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, UnicodeDecodeError) as exc:
        print(f"edgecall campaign import: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        history.close()
    progress(report, last=True)
    for problem in report.errors + report.duplicates:
        print(f"{args.file}:{problem.line}: {problem.column or 'row'}: {problem.message}")
    print(
        f"{args.file}: {report.imported} new and {report.updated} updated customers in list "
        f"{args.list!r} of campaign {args.campaign!r}; {len(report.errors)} rows skipped"
    )
    return EXIT_BAD_INPUT if report.errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edgecall.appliance import run

    return run(args.config or default_config_path())


def cmd_say(args: argparse.Namespace) -> int:
    from edgecall.speech import say

    return say.main(args, args.config or default_config_path())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecall", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgecall {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate a config file and report every mistake")
    p.add_argument("path", nargs="?", type=Path, help="config file (default: %(default)s)")
    p.add_argument(
        "--no-model-files",
        action="store_true",
        help="do not check the model files it names (when checking away from the appliance)",
    )
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("replay", help="run scripted calls through the rule engine")
    p.add_argument("files", nargs="+", type=Path, help="replay YAML files")
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.add_argument(
        "--scene-model", type=Path, help="scene model (.tflite/.onnx) for redial decisions"
    )
    p.add_argument(
        "--quiet", action="store_true", help="on stderr, only the outcome (not the path)"
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("run", help="run the appliance daemon (what systemd starts)")
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("forget", help="erase one person's calls from the box (privacy)")
    p.add_argument("number", help="the phone number, in any spelling")
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("stats", help="calls, outcomes and conversion per campaign and variant")
    p.add_argument("--campaign", help="only this campaign")
    p.add_argument("--json", action="store_true", help="as JSON (what the call-stats command says)")
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("campaign", help="a campaign's customer lists")
    campaign = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = campaign.add_parser(
        "import", help="import a customer list from CSV (bad rows reported by line, skipped)"
    )
    p.add_argument("file", type=Path, help="CSV with a header row (see edgecall/customers.py)")
    p.add_argument("--campaign", required=True, help="the campaign that calls this list")
    p.add_argument("--list", default="default", help="name of the list (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.set_defaults(func=cmd_campaign_import)

    p = sub.add_parser("say", help="write or play a prompt exactly as a caller hears it")
    from edgecall.speech import say

    say.add_arguments(p)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("tail", help="follow one appliance's events and outcomes live")
    tail.add_arguments(p)
    p.set_defaults(func=tail.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        # the reader went away (`edgecall replay ... | head`): stop quietly, as cat does;
        # stdout goes to /dev/null so the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
