"""Voices on this machine: speed, first-audio latency, and what a caller's ear (our ASR) hears.

Run: `.venv/bin/python -m tests.bench.bench_tts` (after `make voices`).

1. Per voice, pinned to one core with 1 thread: load time and real-time factor
   (synthesis time / audio duration) over the sentences below.
2. Round trip: each sentence synthesized, brought to the call's 16 kHz, then
   transcribed by the shipped Whisper model of its language at 16 kHz and after
   the 8 kHz G.711 telephone band (sox: mu-law, 300-3400 Hz); WER for English,
   CER for Mandarin, with the normalisation the ASR tests use.
3. First audio: the daemon's own path (`Speaker` with the shipped voices in a
   "tts" worker process, as `edgecall run` starts it): from asking for a prompt
   to its first piece being ready to play, for prompts never synthesized before
   (one-sentence prompts with the caller's details in them) and for cached ones.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from edgecall.inference.asr import UtteranceRecognizer
from edgecall.inference.asr_metrics import cer, wer
from edgecall.inference.chinese_script import to_script
from edgecall.inference.settings import InferenceConfig
from edgecall.inference.worker import InferenceClient, WorkerSettings
from edgecall.speech.cache import PromptCache
from edgecall.speech.say import telephone_channel
from edgecall.speech.speaker import TTS_REGISTRY, Speaker, campaign_prompts
from edgecall.speech.synth import CALL_RATE, to_call_pcm
from edgecall.speech.text import render
from edgecall.speech.voices import load_voice

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
# The daemon's ASR of each language, and for English also Whisper base, a better ear: tiny.en
# mishears words a person would not ("59 yuan" -> "59 you in"), whatever the voice.
EARS = {"en": ("whisper-tiny-en", "whisper-base"), "zh": ("whisper-base",)}

EXTRA = {
    "en": [
        "Your new plan starts on March 3rd, 2027.",
        "It costs 59 yuan a month, or 128 yuan for the family plan.",
        "We will call you back at 3 pm tomorrow.",
        "Our office is open from 9:30 to 18:00 on weekdays.",
        "The offer ends on the 31st of December.",
        "You will save about 15% compared with last year.",
        "Please call our service line at 400 820 8820.",
        "The upgrade gives you 200 GB for just 10 yuan more.",
        "Your contract has 12 months left, and the fee is 30 yuan.",
        "I can call you again after 5 o'clock if that suits you.",
    ],
    "zh": [
        "这个套餐每月只要128元。",
        "我们明天下午3点再给您打电话。",
        "本月办理可以节省15%的费用。",
        "请拨打我们的客服热线4008208820。",
        "优惠活动截止到12月31日。",
        "您的合约还剩12个月。",
        "家庭套餐每月199元，可以添加三个号码。",
        "升级后每月多10元就有200G流量。",
        "我们的营业厅早上9点半开门。",
        "好的，没问题，我马上为您办理。",
    ],
}


def sentences(cfg: EdgecallConfig, language: str) -> list[str]:
    shipped = [
        render(p.text, {"product": c.product})
        for c in cfg.campaigns.values()
        if c.language == language
        for _, p in campaign_prompts(c)
    ]
    return shipped + EXTRA[language]


def telephone(pcm: bytes, tmp: Path) -> np.ndarray:
    """16 kHz call audio as a G.711 mu-law caller hears it (`edgecall say`'s channel)."""
    out = tmp / "heard.wav"
    telephone_channel(pcm, out, "pcmu")
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def round_trip(
    cfg: EdgecallConfig, language: str, rank: int, ears: dict[str, UtteranceRecognizer]
) -> dict:
    voice_cfg = cfg.models.tts.voices[language][rank]
    t0 = time.perf_counter()
    voice = load_voice(voice_cfg, language, MODELS, threads=1)
    load_s = time.perf_counter() - t0
    texts = sentences(cfg, language)
    synth_s = audio_s = 0.0
    heard: dict[tuple[str, str], list[str]] = {(e, b): [] for e in ears for b in ("16k", "8k")}
    with tempfile.TemporaryDirectory() as tmp:
        for text in texts:
            t0 = time.perf_counter()
            samples = voice.synthesize(text)
            synth_s += time.perf_counter() - t0
            audio_s += samples.size / voice.sample_rate
            pcm = to_call_pcm(samples, voice.sample_rate)
            for band, audio, rate in (
                ("16k", np.frombuffer(pcm, "<i2"), CALL_RATE),
                ("8k", telephone(pcm, Path(tmp)), 8000),
            ):
                for ear, asr in ears.items():
                    words = " ".join(u.text for u in asr.transcribe(audio, rate))
                    words = to_script(words, "simplified") if language == "zh" else words
                    heard[ear, band].append(words)
    score = cer if language == "zh" else wer
    last = list(ears)[-1]
    worst = max(zip(texts, heard[last, "8k"], strict=True), key=lambda th: score([th[0]], [th[1]]))
    return {
        "voice": voice.name,
        "load_s": load_s,
        "rtf": synth_s / audio_s,
        "scores": {key: score(texts, hyps) for key, hyps in heard.items()},
        "n": len(texts),
        "worst": (last, *worst),
    }


async def first_audio(cfg: EdgecallConfig, language: str, n: int) -> tuple[list, list]:
    client = InferenceClient(
        WorkerSettings.from_models_config(cfg.models, workers=1),
        config=InferenceConfig.from_config(cfg, REPO),
        registry=TTS_REGISTRY,
    )
    await client.start()
    try:
        await client.call("tts", "voices", {"language": language}, timeout=120)
        with tempfile.TemporaryDirectory() as tmp:
            speaker = Speaker(cfg, REPO, client, PromptCache(Path(tmp), 1 << 30))
            texts = EXTRA[language][:n]
            cold, warm = [], []
            for samples in (cold, warm):  # the first pass caches what the second plays
                for text in texts:
                    t0 = time.perf_counter()
                    _, produced = speaker.speech(language, text)
                    async for _piece in produced:
                        samples.append(time.perf_counter() - t0)
                        break
                    async for _piece in produced:  # let the rest finish (and be cached)
                        pass
            return cold, warm
    finally:
        await client.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0


def main() -> None:
    os.sched_setaffinity(0, {0})  # one core, and the worker processes inherit it
    cfg = load_model(REPO / "config.yaml", EdgecallConfig)
    cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"dir": MODELS})})
    print(
        "| voice | load s | RTF (1 core) | heard by | round trip 16 kHz | 8 kHz G.711 | sentences |"
    )
    print("|---|---|---|---|---|---|---|")
    worst = []
    for language in ("en", "zh"):
        ears = {n: UtteranceRecognizer(MODELS / n, language=language) for n in EARS[language]}
        metric = "CER" if language == "zh" else "WER"
        for rank in range(len(cfg.models.tts.voices[language])):
            r = round_trip(cfg, language, rank, ears)
            for i, ear in enumerate(ears):
                head = f"{r['voice']} | {r['load_s']:.2f} | {r['rtf']:.3f}" if i == 0 else " | "
                print(
                    f"| {head} | {ear} | {metric} {100 * r['scores'][ear, '16k']:.1f} % | "
                    f"{metric} {100 * r['scores'][ear, '8k']:.1f} % | {r['n']} |"
                )
            worst.append((r["voice"], *r["worst"]))
    print()
    for voice, ear, text, heard in worst:
        print(f"worst at 8 kHz, {voice} heard by {ear}: {text!r} -> {heard!r}")
    print()
    print("| voice | first audio, new prompt p50 / p95 | cached p50 / p95 | prompts |")
    print("|---|---|---|---|")
    for language in ("en", "zh"):
        cold, warm = asyncio.run(first_audio(cfg, language, 10))
        print(
            f"| {language} first voice | {pct(cold, 50):.0f} / {pct(cold, 95):.0f} ms | "
            f"{pct(warm, 50):.1f} / {pct(warm, 95):.1f} ms | {len(cold)} |"
        )


if __name__ == "__main__":
    main()
