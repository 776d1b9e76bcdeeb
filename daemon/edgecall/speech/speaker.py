"""What the caller hears for a prompt: its recording, its cached synthesis, or speech made now.

The call path asks `Speaker.speech(...)` for a prompt and plays the pieces it
yields, one WAV file after another:

- a prompt with a `wav` plays that recording, converted once to the call's rate
  (a recording that cannot be read is logged and the text is synthesized
  instead);
- a prompt synthesized before (at start, on reload, or by an earlier call) plays
  from the cache: one piece, no model involved;
- otherwise the text is cut into pieces (`speech.text.pieces`) synthesized in
  the "tts" worker processes; the first piece plays while the next is made, so
  the caller waits for one short piece, not the whole prompt. A prompt that
  every piece of came from the language's first voice is cached for next time.

Each `Speech` records where its audio came from and which voice spoke, for the
call's `prompt.played` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from edgecall.config.root import EdgecallConfig
from edgecall.config.scripts import Campaign, Prompt
from edgecall.inference.protocol import Priority
from edgecall.speech import recorded
from edgecall.speech.cache import PromptCache, key_of, write_wav
from edgecall.speech.synth import CALL_RATE, LEAD_IN_S, without_lead_in
from edgecall.speech.text import CALL_SLOTS, pieces, render, slots_in
from edgecall.speech.voice import VoiceError
from edgecall.speech.voices import voice_label

log = logging.getLogger("edgecall.speech")

Source = Literal["recorded", "synthesized", "none"]
_PIECE_NUMBERS = itertools.count(1)
TTS_MODEL = "tts"
TTS_REGISTRY = {TTS_MODEL: "edgecall.speech.synth:SynthHandler"}


class Synthesizer(Protocol):
    """The part of `InferenceClient` the speaker uses (a "tts" registry)."""

    async def call(self, model: str, method: str, params: Mapping[str, Any], **kw: Any) -> Any: ...


@dataclass(frozen=True)
class Piece:
    path: Path
    duration_s: float


@dataclass
class Speech:
    """One prompt as the caller hears it; filled in while its pieces are produced."""

    text: str
    language: str
    source: Source = "none"
    voice: str | None = None
    cached: bool = False
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0  # of the pieces produced so far


def campaign_prompts(campaign: Campaign) -> list[tuple[str, Prompt]]:
    """Every prompt of a campaign, named as check-config and `edgecall say` name them."""
    named = list(campaign.prompts.items())
    named += [(f"followup.{topic}", p) for topic, p in campaign.followups.items()]
    return named


class Speaker:
    def __init__(
        self,
        cfg: EdgecallConfig,
        base_dir: Path,
        synth: Synthesizer | None,
        cache: PromptCache,
    ) -> None:
        self.cfg = cfg
        self.base_dir = base_dir
        self.synth = synth
        self.cache = cache
        models = cfg.models
        self.models_dir = models.dir if models.dir.is_absolute() else base_dir / models.dir
        self._labels: dict[str, str | None] = {}
        for language, voices in models.tts.voices.items():
            try:
                self._labels[language] = voice_label(voices[0], self.models_dir)
            except VoiceError as exc:
                log.error("first %s voice unusable, its prompts are not cached: %s", language, exc)
                self._labels[language] = None

    # --- what the call path uses ---------------------------------------------------------

    def speech(
        self,
        language: str,
        text: str,
        *,
        wav: Path | None = None,
        cacheable: bool = True,
        first_priority: Priority = Priority.HIGH,
    ) -> tuple[Speech, AsyncIterator[Piece]]:
        """What the caller hears of a prompt (its slots already filled in): a description,
        completed as the pieces come, and the pieces; close the iterator when done with it.
        `cacheable=False` for a text that holds one caller's details."""
        speech = Speech(text, language)
        return speech, self._produce(speech, wav, cacheable, first_priority)

    async def _produce(
        self, speech: Speech, wav: Path | None, cacheable: bool, first_priority: Priority
    ) -> AsyncIterator[Piece]:
        if wav is not None:
            try:
                piece = await self.recording(wav)
            except recorded.RecordingError as exc:
                log.warning("recorded prompt unusable, synthesizing its text: %s", exc)
                speech.notes.append(str(exc))
            else:
                speech.source, speech.duration_s = "recorded", piece.duration_s
                yield piece
                return
        key = self._synth_key(speech.language, speech.text)
        hit = self.cache.get(key) if key and cacheable else None
        if hit is not None:
            speech.source, speech.cached = "synthesized", True
            speech.voice, speech.duration_s = hit.meta.get("voice"), hit.duration_s
            yield Piece(hit.path, hit.duration_s)
            return
        async for piece in self._synthesize(speech, key if cacheable else None, first_priority):
            yield piece

    async def recording(self, wav: Path) -> Piece:
        """A recorded prompt at the call's rate, converted on first use."""
        src = wav if wav.is_absolute() else self.base_dir / wav
        try:
            st = src.stat()
        except OSError:
            raise recorded.RecordingError(f"{src}: recording not found") from None
        key = key_of("recorded", str(src.resolve()), str(st.st_size), str(st.st_mtime_ns))
        hit = self.cache.get(key)
        if hit is None:
            pcm = await asyncio.to_thread(recorded.convert, src)
            hit = self.cache.put(key, pcm, {"recording": str(src)})
        return Piece(hit.path, hit.duration_s)

    def _synth_key(self, language: str, text: str) -> str | None:
        label = self._labels.get(language)
        # what the synthesis makes of the text is part of the key: a cache kept from before a
        # change of rate or lead-in is not served
        made = f"{CALL_RATE} Hz, lead-in {LEAD_IN_S} s"
        return key_of("tts", label, language, text, made) if label else None

    async def _synthesize(
        self, speech: Speech, key: str | None, first_priority: Priority
    ) -> AsyncIterator[Piece]:
        parts = pieces(speech.text, speech.language)
        if self.synth is None or not parts:
            speech.notes.append("no speech synthesis available" if parts else "empty text")
            return
        later = min(first_priority, Priority.NORMAL)  # a warm-up stays low throughout
        made: list[bytes] = []
        first_voice_only = True
        scratch: list[Path] = []
        ahead = asyncio.ensure_future(self._say(speech.language, parts[0], first_priority))
        try:
            for i in range(len(parts)):
                result = await ahead
                if i + 1 < len(parts):  # made while this piece plays
                    ahead = asyncio.ensure_future(self._say(speech.language, parts[i + 1], later))
                if not result.ok:
                    speech.notes.append(f"piece {i + 1} not synthesized: {result.reason}")
                    first_voice_only = False
                    continue
                value = result.value
                speech.notes.extend(e for e in value["errors"] if e not in speech.notes)
                first_voice_only = first_voice_only and value["rank"] == 0
                speech.source = "synthesized"
                speech.voice = speech.voice or value["voice"]
                pcm = value["pcm"] if made else without_lead_in(value["pcm"])
                made.append(pcm)
                path = self._scratch_path()
                scratch.append(path)
                await asyncio.to_thread(write_wav, path, pcm)
                duration = len(pcm) / 2 / CALL_RATE
                speech.duration_s += duration
                yield Piece(path, duration)
            if key is not None and first_voice_only and made:
                meta = {"voice": speech.voice, "text": speech.text, "language": speech.language}
                await asyncio.to_thread(self.cache.put, key, b"".join(made), meta)
        finally:
            ahead.cancel()
            for path in scratch:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def _say(self, language: str, text: str, priority: Priority) -> Any:
        assert self.synth is not None
        return await self.synth.call(
            TTS_MODEL,
            "say",
            {"language": language, "text": text},
            timeout=self.cfg.models.tts.sentence_timeout_s,
            priority=priority,
        )

    def _scratch_path(self) -> Path:
        # One count per process: the speaker a reload replaces may still be playing pieces.
        return self.cache.scratch / f"{os.getpid()}-{next(_PIECE_NUMBERS)}.wav"

    # --- before the first call -------------------------------------------------------------

    async def warm(self) -> dict[str, int]:
        """Convert every recording and synthesize every fixed prompt of every campaign, at
        low priority, so calls play them from the cache. Returns counts for the log."""
        counts = {"recorded": 0, "synthesized": 0, "cached": 0, "failed": 0, "at_call_time": 0}
        for name, campaign in self.cfg.campaigns.items():
            for situation, prompt in campaign_prompts(campaign):
                if slots_in(prompt.text) & CALL_SLOTS and prompt.wav is None:
                    counts["at_call_time"] += 1
                    continue
                speech, produced = self.speech(
                    campaign.language,
                    render(prompt.text, {"product": campaign.product}),
                    wav=prompt.wav,
                    first_priority=Priority.LOW,
                )
                async with contextlib.aclosing(produced) as stream:
                    async for _ in stream:
                        pass
                if speech.source == "recorded":
                    counts["recorded"] += 1
                elif speech.cached:
                    counts["cached"] += 1
                elif speech.source == "synthesized":
                    counts["synthesized"] += 1
                else:
                    counts["failed"] += 1
                    log.warning(
                        "campaign %s prompt %s cannot be spoken: %s",
                        name,
                        situation,
                        "; ".join(speech.notes),
                    )
        await asyncio.to_thread(self.cache.prune)
        return counts
