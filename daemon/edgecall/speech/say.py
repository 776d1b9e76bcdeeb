"""`edgecall say`: hear a prompt exactly as a caller will, before a campaign starts.

The prompt goes through the daemon's own path (recording or voice chain,
pieces, level) and then through the telephone channel a caller gets: G.711 at
8 kHz in the 300-3400 Hz band by default, or wideband G.722. The voices run in
this process (no daemon needed); nothing is written to the box's prompt cache.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig
from edgecall.inference.protocol import Result
from edgecall.inference.settings import InferenceConfig
from edgecall.speech.cache import PromptCache
from edgecall.speech.speaker import Speaker, Speech, campaign_prompts
from edgecall.speech.synth import CALL_RATE, SynthHandler
from edgecall.speech.text import render

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
# What sox does to 16 kHz call audio to give what a caller on each codec hears.
# (output format, effects) for sox.
CHANNELS = {
    "pcma": (["-r", "8000", "-e", "a-law"], ["sinc", "300-3400"]),
    "pcmu": (["-r", "8000", "-e", "u-law"], ["sinc", "300-3400"]),
    "g722": ([], []),
}


class InProcessSynth:
    """The "tts" worker's handler called in this process, for a one-off command."""

    def __init__(self, config: InferenceConfig) -> None:
        self._handler = SynthHandler()
        self._handler.load(config)

    async def call(self, model: str, method: str, params: Any, **_: Any) -> Result:
        try:
            value = await asyncio.to_thread(getattr(self._handler, method), **params)
        except Exception as exc:
            return Result(0, model, "error", reason=f"{type(exc).__name__}: {exc}")
        return Result(0, model, "ok", value=value)


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("text", nargs="?", help="a text to say (with --lang)")
    what.add_argument("--campaign", help="say a prompt of this campaign (with --situation)")
    p.add_argument("--situation", help="opening, closing... or followup.<topic>; with --campaign")
    p.add_argument("--lang", choices=["zh", "en"], help="language of TEXT")
    p.add_argument("--config", type=Path, help="config file (default: as check-config)")
    p.add_argument("-o", "--output", type=Path, help="write a WAV file (default: play it)")
    p.add_argument(
        "--codec",
        choices=sorted(CHANNELS),
        default="pcma",
        help="the caller's channel (default: %(default)s, 8 kHz telephone band)",
    )


def main(args: argparse.Namespace, config_path: Path) -> int:
    try:
        cfg = load_model(config_path, EdgecallConfig)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_BAD_INPUT
    picked = _pick(cfg, args)
    if isinstance(picked, str):
        print(f"edgecall say: {picked}", file=sys.stderr)
        return EXIT_BAD_INPUT
    language, text, wav = picked
    base_dir = config_path.resolve().parent
    with tempfile.TemporaryDirectory(prefix="edgecall-say-") as tmp:
        synth = InProcessSynth(InferenceConfig.from_config(cfg, base_dir))
        speaker = Speaker(cfg, base_dir, synth, PromptCache(Path(tmp), 1 << 30))
        speech, pcm = asyncio.run(_render(speaker, language, text, wav))
        for note in speech.notes:
            print(f"note: {note}", file=sys.stderr)
        if not pcm:
            print("edgecall say: nothing could be spoken", file=sys.stderr)
            return EXIT_FAILURE
        heard = Path(tmp) / "heard.wav"
        telephone_channel(pcm, heard, args.codec)
        by = f"voice {speech.voice}" if speech.source == "synthesized" else "recording"
        print(f"{speech.duration_s:.1f} s, {by}, {args.codec}: {speech.text}", file=sys.stderr)
        if args.output is not None:
            shutil.copyfile(heard, args.output)
            print(args.output)
            return EXIT_OK
        return _play(heard)


def _pick(cfg: EdgecallConfig, args: argparse.Namespace) -> tuple[str, str, Path | None] | str:
    if args.campaign is None:
        if not args.lang:
            return "a TEXT needs --lang zh or --lang en"
        return args.lang, args.text, None
    campaign = cfg.campaigns.get(args.campaign)
    if campaign is None:
        return f"no campaign {args.campaign!r}; known: {', '.join(cfg.campaigns)}"
    prompts = dict(campaign_prompts(campaign))
    if args.situation not in prompts:
        return f"campaign {args.campaign} has no prompt {args.situation!r}; known: " + ", ".join(
            prompts
        )
    prompt = prompts[args.situation]
    return campaign.language, render(prompt.text, {"product": campaign.product}), prompt.wav


async def _render(
    speaker: Speaker, language: str, text: str, wav: Path | None
) -> tuple[Speech, bytes]:
    speech, produced = speaker.speech(language, text, wav=wav, cacheable=False)
    pcm = bytearray()
    async for piece in produced:
        with wave.open(str(piece.path), "rb") as w:
            pcm += w.readframes(w.getnframes())
    return speech, bytes(pcm)


def telephone_channel(pcm: bytes, out: Path, codec: str) -> None:
    """16 kHz call audio -> what the caller's codec delivers, as 16-bit PCM WAV."""
    raw = ["-t", "raw", "-r", str(CALL_RATE), "-e", "signed", "-b", "16", "-c", "1", "-"]
    coded = out.with_suffix(".coded.wav")
    fmt, effects = CHANNELS[codec]
    subprocess.run(["sox", "-D", *raw, *fmt, str(coded), *effects], input=pcm, check=True)
    subprocess.run(["sox", "-D", str(coded), "-e", "signed", "-b", "16", str(out)], check=True)


def _play(path: Path) -> int:
    player = shutil.which("play") or shutil.which("aplay")
    if player is None:
        print("edgecall say: no audio player (sox's play or aplay); use -o FILE", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if subprocess.run([player, "-q", str(path)]).returncode == 0 else EXIT_FAILURE
