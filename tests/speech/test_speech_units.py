"""The speaking half's own logic on plain data: pieces, slots, the cache, recordings, and the
speaker's choice between recording, cache and synthesis (with a stand-in synthesizer)."""

from __future__ import annotations

import asyncio
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from edgecall.config.root import EdgecallConfig
from edgecall.inference.protocol import Priority, Result
from edgecall.speech import recorded
from edgecall.speech.cache import PromptCache, key_of, write_wav
from edgecall.speech.speaker import Speaker
from edgecall.speech.synth import CALL_RATE, LEAD_IN_S, to_call_pcm, without_lead_in
from edgecall.speech.text import pieces, render, slots_in


def test_pieces_are_sentences_and_a_long_first_sentence_is_cut_after_its_first_clause():
    text = "Our plan has 100 GB of data, unlimited calls, and no contract. Sure, let me explain."
    assert pieces(text, "en") == [
        "Our plan has 100 GB of data,",
        "unlimited calls, and no contract.",
        "Sure, let me explain.",
    ]
    short_first = "Sure, I can explain how our 5G plan works for you today. Goodbye."
    assert pieces(short_first, "en") == [  # "Sure," alone would sound clipped
        "Sure, I can explain how our 5G plan works",  # still long: cut before a phrase
        "for you today.",
        "Goodbye.",
    ]
    zh = "您好，这里是城市通信客服，打扰您一分钟介绍我们的5G套餐可以吗？好的。"
    assert pieces(zh, "zh") == [
        "您好，这里是城市通信客服，",
        "打扰您一分钟介绍我们的5G套餐可以吗？",
        "好的。",
    ]
    assert pieces("  ", "en") == []
    assert pieces("Goodbye.", "en") == ["Goodbye."]


def test_a_long_first_sentence_without_commas_is_cut_before_a_phrase():
    assert pieces("Our office is open from 9:30 to 18:00 on weekdays.", "en") == [
        "Our office is open",
        "from 9:30 to 18:00 on weekdays.",
    ]
    # no opener after three words with two words left over: the sentence stays whole
    whole = "Absolutely everything is completely sold out everywhere today."
    assert pieces(whole, "en") == [whole]
    assert pieces("Call us about it.", "en") == ["Call us about it."]


def test_marks_inside_numbers_do_not_end_a_piece():
    text = "It is 3.5 GB for 1,000 yuan, from 9:30 every day, and then it renews."
    assert pieces(text, "en") == [
        "It is 3.5 GB for 1,000 yuan,",
        "from 9:30 every day, and then it renews.",
    ]
    assert pieces("下午3:30再打给您。好吗？", "zh") == ["下午3:30再打给您。", "好吗？"]


def test_pieces_keep_every_character_of_the_text():
    text = "价格方面，本月办理首月免费，之后每月59元，比您现在的套餐还便宜。谢谢！"
    assert "".join(pieces(text, "zh")) == text


def test_slots_are_filled_and_unknown_values_are_left_out():
    assert slots_in("Our {product} for {number_tail}") == {"product", "number_tail"}
    assert render("Our {product}, number {number_tail}.", {"product": "5G plan"}) == (
        "Our 5G plan, number ."
    )


def test_prompt_text_with_an_unknown_or_broken_slot_is_a_config_error(shipped_config):
    data = shipped_config.model_dump()
    data["campaigns"]["retail-en"]["prompts"]["opening"]["text"] = "Hi {name}"
    with pytest.raises(ValueError, match=r"unknown slot \{name\}"):
        EdgecallConfig.model_validate(data)
    data["campaigns"]["retail-en"]["prompts"]["opening"]["text"] = "Hi {product"
    with pytest.raises(ValueError, match="malformed slot braces"):
        EdgecallConfig.model_validate(data)


def test_voice_entries_need_their_source(shipped_config):
    data = shipped_config.model_dump()
    data["models"]["tts"]["voices"]["en"] = [{"kind": "piper"}]
    with pytest.raises(ValueError, match="needs 'dir'"):
        EdgecallConfig.model_validate(data)
    data["models"]["tts"]["voices"]["en"] = [{"kind": "espeak"}]
    with pytest.raises(ValueError, match="needs 'voice'"):
        EdgecallConfig.model_validate(data)
    data["models"]["tts"]["voices"]["en"] = []
    with pytest.raises(ValueError, match="at least one voice"):
        EdgecallConfig.model_validate(data)


def test_call_pcm_is_16k_int16_at_a_common_peak():
    t = np.arange(22050) / 22050
    quiet = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    pcm = np.frombuffer(to_call_pcm(quiet, 22050), dtype="<i2")
    assert abs(pcm.size - CALL_RATE) <= 2
    assert 0.75 * 32767 < np.max(np.abs(pcm)) <= 0.81 * 32767
    assert to_call_pcm(np.zeros(0, np.float32), 24000) == b""


def test_call_pcm_cuts_the_voices_lead_in_and_keeps_the_rest():
    t = np.arange(12000) / 24000
    tone = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    # 300 ms of digital silence and a faint -70 dBFS hiss, then the sound, then a pause
    lead = np.concatenate([np.zeros(7200, np.float32), np.full(240, 3e-4, np.float32)])
    audio = np.concatenate([lead, tone, np.zeros(4800, np.float32), tone])
    pcm = np.frombuffer(without_lead_in(to_call_pcm(audio, 24000)), "<i2").astype(np.float32)
    first = int(np.flatnonzero(np.abs(pcm) > 0.01 * 32767)[0])
    assert (LEAD_IN_S - 0.005) * CALL_RATE <= first <= (LEAD_IN_S + 0.005) * CALL_RATE
    kept = pcm.size / CALL_RATE
    assert abs(kept - (audio.size / 24000 - 0.31 + LEAD_IN_S)) < 0.006  # the inner pause stays
    silent = np.zeros(4800, np.float32)
    assert len(without_lead_in(to_call_pcm(silent, 24000))) == 2 * 3200  # left alone


def test_cache_round_trip_and_prune_drops_least_recently_played(tmp_path):
    cache = PromptCache(tmp_path, max_bytes=3 * 16000 * 2)
    for i in range(4):
        cache.put(key_of("k", str(i)), b"\1\0" * 16000, {"voice": f"v{i}"})
    assert cache.get(key_of("k", "0")).meta["voice"] == "v0"  # played: now the newest
    assert cache.prune() >= 1
    assert cache.get(key_of("k", "0")) is not None
    assert cache.get(key_of("k", "1")) is None
    hit = cache.get(key_of("k", "3"))
    with wave.open(str(hit.path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    assert hit.duration_s == 1.0


def test_cache_clears_pieces_left_by_a_previous_run(tmp_path):
    PromptCache(tmp_path, 1 << 20)
    (tmp_path / "pieces" / "1-1.wav").write_bytes(b"x")
    PromptCache(tmp_path, 1 << 20)
    assert list((tmp_path / "pieces").iterdir()) == []


def _tone(path: Path, rate: int, channels: int = 1, seconds: float = 0.5) -> Path:
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            str(rate),
            "-c",
            str(channels),
            str(path),
            "synth",
            str(seconds),
            "sine",
            "440",
            "vol",
            "0.5",
        ],
        check=True,
    )
    return path


def test_a_recording_in_any_format_is_converted_to_the_call_rate(tmp_path):
    pcm = recorded.convert(_tone(tmp_path / "studio.flac", 44100, channels=2))
    assert abs(len(pcm) / 2 - 0.5 * CALL_RATE) < 10


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"RIFF not really a wave file", "not a recording sox can read"), (None, "not found")],
)
def test_a_bad_recording_is_refused_with_its_name(tmp_path, content, message):
    src = tmp_path / "opening.wav"
    if content is not None:
        src.write_bytes(content)
    with pytest.raises(recorded.RecordingError, match=message) as err:
        recorded.convert(src)
    assert "opening.wav" in str(err.value)


def test_a_silent_recording_is_refused(tmp_path):
    src = tmp_path / "silent.wav"
    write_wav(src, b"\0\0" * 8000)
    with pytest.raises(recorded.RecordingError, match="empty or silent"):
        recorded.convert(src)


class StubSynth:
    """Says each piece as 0.1 s per character of a tone; can fail or fall back on request."""

    def __init__(self, fail_on: str | None = None, rank: int = 0) -> None:
        self.calls: list[tuple[str, Priority]] = []
        self.fail_on, self.rank = fail_on, rank

    async def call(self, model, method, params, *, timeout=None, priority=Priority.NORMAL):
        self.calls.append((params["text"], priority))
        await asyncio.sleep(0)
        if self.fail_on and self.fail_on in params["text"]:
            return Result(0, model, "error", reason="SpeechError: no voice could say it")
        pcm = b"\1\0" * int(0.01 * CALL_RATE * len(params["text"]))
        errors = ["piper cannot say it"] if self.rank else []
        return Result(
            0,
            model,
            "ok",
            value={
                "pcm": pcm,
                "voice": "stub",
                "quality": "high",
                "rank": self.rank,
                "errors": errors,
            },
        )


def make_speaker(cfg, tmp_path, synth):
    """A speaker whose first voices are known without model files (espeak-ng's)."""
    data = cfg.model_dump()
    data["models"]["tts"]["voices"] = {
        "en": [{"kind": "espeak", "voice": "en-us"}],
        "zh": [{"kind": "espeak", "voice": "cmn"}],
    }
    cfg = EdgecallConfig.model_validate(data)
    return Speaker(cfg, tmp_path, synth, PromptCache(tmp_path / "cache", 1 << 30))


async def collect(speaker, *args, **kw):
    speech, produced = speaker.speech(*args, **kw)
    got = [p async for p in produced]
    return speech, got


async def test_synthesized_in_pieces_first_piece_first_then_cached(shipped_config, tmp_path):
    synth = StubSynth()
    speaker = make_speaker(shipped_config, tmp_path, synth)
    text = "Sure, let me explain that. You get 100 GB of nationwide data every month."
    speech, got = await collect(speaker, "en", text)
    assert len(got) == 2 and speech.source == "synthesized" and not speech.cached
    assert [p for _, p in synth.calls] == [Priority.HIGH, Priority.NORMAL]
    assert not any(p.path.exists() for p in got)  # pieces are removed once played
    again, got2 = await collect(speaker, "en", text)
    assert again.cached and again.voice == "stub" and len(got2) == 1
    assert len(synth.calls) == 2  # nothing synthesized the second time
    assert again.duration_s == pytest.approx(speech.duration_s, abs=0.01)


async def test_personal_or_fallback_voice_prompts_are_not_cached(shipped_config, tmp_path):
    synth = StubSynth()
    speaker = make_speaker(shipped_config, tmp_path, synth)
    await collect(speaker, "en", "Calling the number ending 1234.", cacheable=False)
    again, _ = await collect(speaker, "en", "Calling the number ending 1234.", cacheable=False)
    assert not again.cached
    fallback = make_speaker(shipped_config, tmp_path / "b", StubSynth(rank=1))
    first, _ = await collect(fallback, "en", "Goodbye now.")
    second, _ = await collect(fallback, "en", "Goodbye now.")
    assert not second.cached and "piper cannot say it" in first.notes


async def test_a_piece_no_voice_can_say_is_skipped_and_noted(shipped_config, tmp_path):
    speaker = make_speaker(shipped_config, tmp_path, StubSynth(fail_on="data"))
    text = "Sure, let me explain that. You get 100 GB of nationwide data every month."
    speech, got = await collect(speaker, "en", text)
    assert len(got) == 1 and any("piece 2 not synthesized" in n for n in speech.notes)


async def test_recording_plays_first_and_a_broken_one_falls_back_to_the_voice(
    shipped_config, tmp_path
):
    synth = StubSynth()
    speaker = make_speaker(shipped_config, tmp_path, synth)
    good = _tone(tmp_path / "hello.wav", 8000)
    speech, got = await collect(speaker, "en", "Hello.", wav=Path("hello.wav"))
    assert speech.source == "recorded" and len(got) == 1 and synth.calls == []
    (tmp_path / "broken.wav").write_bytes(b"garbage")
    speech, got = await collect(speaker, "en", "Hello there.", wav=Path("broken.wav"))
    assert speech.source == "synthesized" and "broken.wav" in speech.notes[0]
    assert good.exists()


async def test_barge_in_stops_synthesis_of_the_rest(shipped_config, tmp_path):
    synth = StubSynth()
    speaker = make_speaker(shipped_config, tmp_path, synth)
    text = "One sentence here. Another sentence there. And a third sentence too."
    speech, produced = speaker.speech("en", text)
    async for _ in produced:
        break  # the caller spoke over the first piece
    await produced.aclose()
    await asyncio.sleep(0.01)
    assert len(synth.calls) <= 2  # the first, and at most the one made ahead
    speech2, _ = await collect(speaker, "en", text)
    assert not speech2.cached  # a prompt cut short is not cached as if whole


async def test_warm_up_makes_every_fixed_prompt_and_counts(shipped_config, tmp_path):
    synth = StubSynth()
    speaker = make_speaker(shipped_config, tmp_path, synth)
    counts = await speaker.warm()
    total = sum(len(c.prompts) + len(c.followups) for c in shipped_config.campaigns.values())
    assert counts["synthesized"] == total and counts["failed"] == 0
    assert all(p == Priority.LOW for _, p in synth.calls)
    assert (await speaker.warm())["cached"] == total
    assert not any("{product}" in text for text, _ in synth.calls)


def test_the_cache_label_changes_with_the_voice_files_and_its_text_code(tmp_path, monkeypatch):
    import json

    from edgecall.config.models import VoiceConfig
    from edgecall.speech import voices

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "manifest.json").write_text(json.dumps({"name": "joe", "files": {}}))
    cfg = VoiceConfig(kind="piper", dir=Path("v"))
    first = voices.voice_label(cfg, tmp_path)
    assert first.startswith("joe@")
    (tmp_path / "v" / "manifest.json").write_text(json.dumps({"name": "joe", "files": {"x": {}}}))
    second = voices.voice_label(cfg, tmp_path)
    monkeypatch.setattr(voices, "_code_digest", lambda kind: b"a new normaliser")
    third = voices.voice_label(cfg, tmp_path)
    assert len({first, second, third}) == 3
    espeak = voices.voice_label(VoiceConfig(kind="espeak", voice="cmn"), tmp_path)
    assert espeak.startswith("espeak-ng-cmn@")
