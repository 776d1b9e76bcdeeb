"""`edgecall check-config` checks the model files config.yaml names, on this disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.unit.test_config import REPO, line_of, run_cli, shipped_with, write

SECRET = {"EDGECALL_SIP_PASSWORD": "x"}


def _here(tmp_path: Path) -> Path:
    """The shipped config copied elsewhere, its models directory pointing back here."""
    return shipped_with(tmp_path, "  dir: models ", f"  dir: {REPO / 'models'} ")


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    return write(path.parent, text.replace(old, new, 1))


def test_shipped_models_pass(tmp_path):
    result = run_cli("check-config", str(_here(tmp_path)), env=SECRET)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_model_listed_for_a_language_it_lacks_and_a_missing_one(tmp_path):
    path = _edit(_here(tmp_path), "dir: whisper-base-ct2 ", "dir: whisper-tiny-en-ct2 ")
    path = _edit(path, "acoustic_emotion: emotion ", "acoustic_emotion: emotoin ")
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 2
    zh = line_of(path, "languages: [zh]")
    emotion = line_of(path, "acoustic_emotion: emotoin")
    assert result.stderr.splitlines() == [
        f"{path}:{zh}:19: models.asr[1].languages[0]: whisper-tiny-en-ct2 transcribes en, not zh",
        f"{path}:{emotion}:3: models.acoustic_emotion: "
        f"{REPO / 'models' / 'emotoin' / 'manifest.json'}: manifest missing",
        f"{path}: 2 error(s) in model files",
    ]


def test_an_altered_model_file_is_caught_before_a_call_needs_it(tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(REPO / "models" / "scene", scene, ignore=shutil.ignore_patterns("work"))
    model = scene / "scene_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    path = _edit(_here(tmp_path), "  scene: scene/scene_int8.tflite", f"  scene: {model}")
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 2
    assert f"{path}:{line_of(path, f'scene: {model}')}:3: models.scene: " in result.stderr
    assert "sha256" in result.stderr


def test_calls_in_a_language_no_asr_model_covers_are_a_warning(tmp_path):
    path = _edit(
        _here(tmp_path),
        "    - kind: whisper_ct2\n      dir: whisper-base-ct2 ",
        "    - kind: whisper_ct2\n      dir: whisper-tiny-en-ct2 ",
    )
    path = _edit(path, "      languages: [zh]", "      languages: [en]")
    result = run_cli("check-config", str(path), env=SECRET)
    assert result.returncode == 0, result.stderr
    warned = [line.split(": warning: ")[1].split(":")[0] for line in result.stderr.splitlines()]
    assert warned == ["appliance.default_language", "campaigns.retail-zh.language"]


def test_checking_away_from_the_appliance_can_skip_the_files(tmp_path):
    path = shipped_with(tmp_path, "  dir: models ", "  dir: /nonexistent/models ")
    assert run_cli("check-config", str(path), env=SECRET).returncode == 2
    skipped = run_cli("check-config", "--no-model-files", str(path), env=SECRET)
    assert skipped.returncode == 0, skipped.stderr
