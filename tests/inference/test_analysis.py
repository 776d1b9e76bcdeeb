"""Caller audio -> inference worker -> utterances with text and emotion, for real:
espeak-ng speech, the shipped tiny.en Whisper and emotion models, a spawned worker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgecall.inference.analyzer import InferenceAnalyzer
from edgecall.inference.settings import InferenceConfig
from edgecall.inference.worker import InferenceClient, WorkerSettings

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="espeak-ng and sox are installed by `make test`",
)


def speech(tmp_path: Path, text: str) -> bytes:
    """16 kHz mono int16 PCM of `text`, as a PBX would deliver it (after G.711 decoding)."""
    wav = tmp_path / "s.wav"
    raw = tmp_path / "s.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    subprocess.run(
        ["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", str(raw)],
        check=True,
    )
    return raw.read_bytes()


@pytest.fixture
async def analyzer(shipped_config):
    config = InferenceConfig.from_config(shipped_config, REPO)
    client = InferenceClient(WorkerSettings.from_models_config(config.models), config=config)
    await client.start()
    try:
        yield InferenceAnalyzer(client, {"en"}), client
    finally:
        await client.close()


def words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()}


@pytest.mark.slow
async def test_streamed_speech_becomes_an_utterance_with_emotion(analyzer, tmp_path):
    client_analyzer, _ = analyzer
    pcm = speech(tmp_path, "I am very interested. How much does the plan cost per month?")
    pcm += b"\0\0" * 16000  # one second of silence ends the utterance
    heard = []
    chunk = 6400  # 200 ms
    for i in range(0, len(pcm), chunk):
        heard += await client_analyzer.feed("call-a", pcm[i : i + chunk], "en")
    heard += await client_analyzer.flush("call-a", "en")
    assert len(heard) >= 1
    text = " ".join(u.text for u in heard)
    assert len(words(text) & {"interested", "much", "plan", "cost", "month"}) >= 4, text
    assert all(u.acoustic is None or -1 <= u.acoustic <= 1 for u in heard)
    assert any(u.acoustic is not None for u in heard)
    assert all(u.text_score is not None for u in heard)


@pytest.mark.slow
async def test_flush_returns_speech_cut_off_by_the_hang_up(analyzer, tmp_path):
    client_analyzer, _ = analyzer
    pcm = speech(tmp_path, "Sorry, I am in the elevator")  # no trailing silence
    assert await client_analyzer.feed("call-b", pcm, "en") == []
    heard = await client_analyzer.flush("call-b", "en")
    assert "elevator" in words(" ".join(u.text for u in heard)), heard


async def test_silence_gives_nothing_and_an_uncovered_language_is_skipped_quietly(analyzer, caplog):
    client_analyzer, client = analyzer
    assert await client_analyzer.feed("call-c", b"\0\0" * 32000, "en") == []
    assert await client_analyzer.flush("call-c", "en") == []
    submitted = client.stats()["submitted"]
    # zh has no ASR model in the shipped config yet: said once per call, nothing sent
    for _ in range(20):
        assert await client_analyzer.feed("call-d", b"\0\0" * 3200, "zh") == []
    assert await client_analyzer.flush("call-d", "zh") == []
    await client_analyzer.close_call("call-d")
    assert client.stats()["submitted"] == submitted
    assert sum("no ASR model for language 'zh'" in r.message for r in caplog.records) == 1
    assert client_analyzer.missing == 0
    assert client.stats()["restarts"] == 0


@pytest.mark.slow
async def test_two_calls_interleaved_on_one_worker_keep_their_own_words(analyzer, tmp_path):
    """Calls share the worker's Whisper model but each keeps its own VAD and audio."""
    client_analyzer, _ = analyzer
    a = speech(tmp_path, "I am interested in the new plan.") + b"\0\0" * 16000
    (tmp_path / "s.wav").unlink()
    b = speech(tmp_path, "Please call me again tomorrow morning.") + b"\0\0" * 16000
    heard = {"call-x": [], "call-y": []}
    chunk = 3200  # 100 ms
    for i in range(0, max(len(a), len(b)), chunk):
        for call, pcm in (("call-x", a), ("call-y", b)):
            if i < len(pcm):
                heard[call] += await client_analyzer.feed(call, pcm[i : i + chunk], "en")
    for call in heard:
        heard[call] += await client_analyzer.flush(call, "en")
    x = words(" ".join(u.text for u in heard["call-x"]))
    y = words(" ".join(u.text for u in heard["call-y"]))
    assert {"interested", "plan"} <= x and not ({"tomorrow", "morning"} & x), x
    assert {"tomorrow", "morning"} <= y and not ({"interested", "plan"} & y), y
