"""Acoustic and text emotion: committed models, measured accuracy bounds, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import tracemalloc
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf

from edgecall.inference import emotion_features as ef
from edgecall.inference.acoustic_emotion import (
    LABELS,
    AcousticEmotion,
    AudioInputError,
    ModelFileError,
)
from edgecall.inference.text_emotion import TextEmotion

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "emotion"
DATASETS = Path(os.environ.get("EDGECALL_DATASETS", REPO.parent / "shared" / "datasets"))
EMODB = DATASETS / "emodb" / "wav"
RAVDESS = DATASETS / "ravdess-sample"
EMODB_MAP = {"W": 0, "E": 0, "A": 0, "T": 0, "N": 1, "L": 1, "F": 2}
RAVDESS_MAP = {"01": 1, "02": 1, "03": 2, "04": 0, "05": 0, "06": 0, "07": 0}

# the example domain lexicon proposed for config.yaml (rules.emotion.lexicon)
CALL_LEXICON = {
    "too expensive": -0.6,
    "too high": -0.5,
    "can't afford": -0.6,
    "not interested": -0.7,
    "stop calling": -0.8,
    "cancel": -0.5,
    "refund": -0.4,
    "complain": -0.5,
    "rip-off": -0.8,
    "switching to": -0.5,
    "waiting for": -0.3,
    "sign up": 0.6,
    "sign me up": 0.7,
    "go ahead": 0.5,
    "interested": 0.4,
    "good deal": 0.6,
    "cheaper": 0.4,
    "reasonable": 0.4,
    "太贵": -0.6,
    "不需要": -0.6,
    "没兴趣": -0.7,
    "别再打": -0.8,
    "投诉": -0.6,
    "退款": -0.4,
    "便宜": 0.4,
    "划算": 0.5,
    "可以办理": 0.6,
    "感兴趣": 0.5,
}


def _training_module(name: str) -> ModuleType:
    """A numpy-only helper from models/emotion, loaded by path (not on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"emotion_{name}", MODEL_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eval_channel = _training_module("telephone_channel").eval_channel
_text_training = _training_module("train_text_zh")


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    f1 = []
    for k in range(3):
        tp = np.sum((y == k) & (pred == k))
        prec = tp / max(1, np.sum(pred == k))
        rec = tp / max(1, np.sum(y == k))
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(f1))


def read_int16(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="int16")
    return audio, sr


@pytest.fixture(scope="module")
def model() -> AcousticEmotion:
    return AcousticEmotion(MODEL_DIR)


@pytest.fixture(scope="module")
def emodb_files() -> list[Path]:
    files = sorted(EMODB.glob("*.wav"))
    assert len(files) == 535, f"Emo-DB expected under {EMODB} (set EDGECALL_DATASETS)"
    return files


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((MODEL_DIR / "manifest.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- acoustic accuracy


@pytest.mark.slow
def test_committed_model_on_held_out_speakers(model, emodb_files, manifest):
    """The shipped model never saw these speakers: clean 22 kHz and 8 kHz G.711 telephone."""
    held_out = manifest["metrics"]["acoustic"]["shipped_model"]["held_out_speakers"]
    assert not set(held_out) & set(
        manifest["metrics"]["acoustic"]["shipped_model"]["trained_on_speakers"]
    )
    y, clean, phone = [], [], []
    for index, path in enumerate(emodb_files):
        if path.name[:2] not in held_out:
            continue
        audio, sr = read_int16(path)
        x16 = ef.resample(ef.to_float_mono(audio), sr, ef.SAMPLE_RATE)
        narrow = ef.resample(eval_channel(x16, index), ef.SAMPLE_RATE, 8000)
        est_clean = model.estimate(audio, sr)
        est_phone = model.estimate((narrow * 32767).astype(np.int16), 8000)
        assert est_clean is not None and est_phone is not None, path.name
        y.append(EMODB_MAP[path.name[5]])
        clean.append(LABELS.index(max(est_clean.probabilities, key=est_clean.probabilities.get)))
        phone.append(LABELS.index(max(est_phone.probabilities, key=est_phone.probabilities.get)))
    y, clean, phone = np.array(y), np.array(clean), np.array(phone)
    majority = np.bincount(y).max() / len(y)
    assert len(y) > 90
    for pred in (clean, phone):
        # measured clean 0.70 / 0.62, telephone 0.63 / 0.54 (acc / macro-F1, MODEL_CARD.md);
        # majority class 0.56 / 0.24
        assert np.mean(pred == y) >= majority
        assert macro_f1(y, pred) >= 0.45
        assert np.bincount(pred, minlength=3).min() > 0  # every tendency gets predicted


def test_ravdess_cross_corpus_sanity(model):
    clips = sorted(RAVDESS.glob("*.wav"))
    assert len(clips) == 8
    correct = 0
    for clip in clips:
        audio, sr = read_int16(clip)
        assert sr == 48000
        est = model.estimate(audio, sr)
        assert est is not None
        assert sum(est.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert -1.0 <= est.score <= 1.0
        code = clip.name.split("-")[2]
        if code in RAVDESS_MAP:
            predicted = LABELS.index(max(est.probabilities, key=est.probabilities.get))
            correct += predicted == RAVDESS_MAP[code]
    assert correct >= 2  # measured 3 of 7 (chance ~2.3): a weak cross-corpus result, see card


def test_real_mandarin_telephone_speech_gets_estimates(model):
    """Unlabelled real zh/en clips, 16 kHz and 8 kHz: an estimate each, the long one capped."""
    clips = sorted((DATASETS / "zh-en-speech").glob("*.wav"))
    assert len(clips) == 5
    for clip in clips:
        audio, sr = read_int16(clip)
        est = model.estimate(audio, sr)
        assert est is not None and est.voiced_s > 1.0, clip.name
        assert est.truncated == (len(audio) / sr > 10.0)


def test_score_is_positive_minus_negative(model, emodb_files):
    audio, sr = read_int16(next(p for p in emodb_files if p.name == "03a01Wa.wav"))
    est = model.estimate(audio, sr)
    assert est.score == pytest.approx(est.probabilities["positive"] - est.probabilities["negative"])
    assert not est.truncated


# ---------------------------------------------------------------- model files


def _copy_models(tmp_path: Path) -> Path:
    target = tmp_path / "emotion"
    target.mkdir()
    for name in ("manifest.json", "acoustic_int8.onnx", "acoustic_int8.tflite", "text_zh_nb.json"):
        shutil.copy(MODEL_DIR / name, target / name)
    return target


def test_altered_model_file_is_refused(tmp_path):
    target = _copy_models(tmp_path)
    data = bytearray((target / "acoustic_int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / "acoustic_int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        AcousticEmotion(target)


def test_truncated_or_missing_model_is_refused(tmp_path):
    target = _copy_models(tmp_path)
    (target / "acoustic_int8.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ModelFileError, match="truncated"):
        AcousticEmotion(target)
    (target / "acoustic_int8.onnx").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        AcousticEmotion(target)


def test_garbage_model_listed_in_manifest_is_refused(tmp_path):
    """A file that matches its (also replaced) manifest but is not ONNX still fails clearly."""
    target = _copy_models(tmp_path)
    (target / "acoustic_int8.onnx").write_bytes(b"not an onnx model")
    from edgecall.inference.manifest import sha256_of

    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"]["acoustic_int8.onnx"] = {
        "sha256": sha256_of(target / "acoustic_int8.onnx"),
        "bytes": 17,
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        AcousticEmotion(target)


def test_altered_tflite_model_is_refused(tmp_path):
    target = _copy_models(tmp_path)
    with (target / "acoustic_int8.tflite").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ModelFileError, match="sha256"):
        AcousticEmotion(target, backend="tflite")


@pytest.mark.slow
def test_tflite_backend_agrees_with_onnx(model, emodb_files):
    lite = AcousticEmotion(MODEL_DIR, backend="tflite")
    same, n = 0, 0
    for path in emodb_files[::16]:
        audio, sr = read_int16(path)
        a, b = model.estimate(audio, sr), lite.estimate(audio, sr)
        assert a.score == pytest.approx(b.score, abs=0.15)
        same += max(a.probabilities, key=a.probabilities.get) == max(
            b.probabilities, key=b.probabilities.get
        )
        n += 1
    assert same / n >= 0.9  # measured 99 % agreement on held-out speakers


def test_altered_text_model_is_refused(tmp_path):
    target = _copy_models(tmp_path)
    with (target / "text_zh_nb.json").open("a", encoding="utf-8") as fh:
        fh.write(" ")
    with pytest.raises(ModelFileError):
        TextEmotion(zh_model_dir=target)


def test_manifest_lists_sources_and_metrics(manifest):
    assert set(manifest["files"]) == {
        "acoustic_int8.onnx",
        "acoustic_int8.tflite",
        "text_zh_nb.json",
    }
    assert "TU Berlin" in manifest["source"]["acoustic"]["dataset"]
    assert manifest["source"]["text_zh"]["license"].startswith("MIT")
    assert len(manifest["metrics"]["acoustic"]["folds"]) == 5


# ---------------------------------------------------------------- bad input


def test_wrong_sample_rates_and_shapes_are_clear_errors(model):
    speech = np.zeros(16000, np.int16)
    for rate in (0, 4000, 200000, "16000"):
        with pytest.raises(AudioInputError, match="sample rate"):
            model.estimate(speech, rate)
    with pytest.raises(AudioInputError, match="mono"):
        model.estimate(np.zeros((16000, 2), np.int16), 16000)
    with pytest.raises(AudioInputError, match="NaN"):
        model.estimate(np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(AudioInputError, match="sample type"):
        model.estimate(np.zeros(16000, np.complex64), 16000)


def test_other_rates_are_resampled(model, emodb_files):
    audio, sr = read_int16(next(p for p in emodb_files if p.name == "03a01Wa.wav"))
    x = ef.to_float_mono(audio)
    for rate in (8000, 16000, 44100, float(16000)):
        est = model.estimate(ef.resample(x, sr, int(rate)), rate)
        assert est is not None and est.analysed_s == pytest.approx(len(x) / sr, abs=0.02)


def test_silence_short_and_empty_audio_are_missing_not_guessed(model, emodb_files):
    assert model.estimate(np.zeros(16000 * 5, np.int16), 16000) is None
    assert model.estimate(np.zeros(0, np.int16), 16000) is None
    rng = np.random.default_rng(1)
    assert model.estimate((rng.standard_normal(8000 * 5) * 30).astype(np.int16), 8000) is None
    audio, sr = read_int16(next(p for p in emodb_files if p.name == "03a01Wa.wav"))
    assert model.estimate(audio[: sr // 10], sr) is None  # 0.1 s: too little voiced speech


def test_clipped_speech_still_gives_an_estimate(model, emodb_files):
    audio, sr = read_int16(next(p for p in emodb_files if p.name == "03a01Wa.wav"))
    clipped = np.clip(audio.astype(np.int32) * 20, -32768, 32767).astype(np.int16)
    est = model.estimate(clipped, sr)
    assert est is not None and est.clipped_fraction > 0.05
    assert -1.0 <= est.score <= 1.0


@pytest.mark.slow
def test_twenty_minutes_of_noise_bounded_memory(model, emodb_files):
    rng = np.random.default_rng(2)
    noise = (rng.standard_normal(8000 * 60 * 20) * 3000).astype(np.int16)  # 20 min at 8 kHz
    tracemalloc.start()
    try:
        assert model.estimate(noise, 8000) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # the 19 MB input is not copied; the analysis is capped at 10 s
    # speech at the end of the long noise is still found, and the result says it was cut
    audio, sr = read_int16(next(p for p in emodb_files if p.name == "03a01Wa.wav"))
    speech = (ef.resample(ef.to_float_mono(audio), sr, 8000) * 32767).astype(np.int16)
    noisy = noise // 30
    noisy[-len(speech) :] = np.clip(noisy[-len(speech) :].astype(np.int32) + speech, -32768, 32767)
    est = model.estimate(noisy, 8000)
    assert est is not None and est.truncated and est.analysed_s == pytest.approx(10.0)


# ---------------------------------------------------------------- text


@pytest.fixture(scope="module")
def text() -> TextEmotion:
    return TextEmotion(zh_model_dir=MODEL_DIR, lexicon=CALL_LEXICON)


def tendency(score: float | None) -> int:
    if score is None:
        return 0
    return 1 if score >= 0.2 else -1 if score <= -0.2 else 0  # default cut points (rules)


def test_chinese_held_out_accuracy(text):
    rows, _ = _text_training.load()
    _, _, test = _text_training.split(rows)
    bare = TextEmotion(zh_model_dir=MODEL_DIR)
    scores = [bare.estimate(t, "zh") for t, _ in test]
    correct = sum(
        (s or 0.0) > 0 and y == 1 or (s or 0.0) <= 0 and y == 0
        for s, (_, y) in zip(scores, test, strict=True)
    )
    assert len(test) > 1500
    assert correct / len(test) >= 0.75  # measured 0.795; majority class 0.527


def _english_rows() -> list[tuple[int, str]]:
    path = REPO / "tests" / "data" / "text_emotion_en.tsv"
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    return [(int(r["label"]), r["text"]) for r in csv.DictReader(lines, delimiter="\t")]


def test_english_call_centre_accuracy_and_lexicon_helps(text):
    rows = _english_rows()
    assert len(rows) == 60
    vader_only = TextEmotion(zh_model_dir=None)
    acc = np.mean([tendency(text.estimate(t, "en")) == y for y, t in rows])
    acc_vader = np.mean([tendency(vader_only.estimate(t, "en")) == y for y, t in rows])
    assert acc >= 0.7
    assert acc > acc_vader


def test_empty_text_and_bad_language(text):
    assert text.estimate("", "en") is None
    assert text.estimate("  \n", "zh") is None
    with pytest.raises(ValueError, match="language"):
        text.estimate("hello", "de")


def test_domain_lexicon_and_negation(text):
    assert text.estimate("That's too expensive.", "en") <= -0.2
    assert text.estimate("It's not too expensive.", "en") > -0.2
    assert text.estimate("No, I can't afford that.", "en") <= -0.2  # "no" is another clause
    assert text.estimate("I CAN\u2019T AFFORD THAT", "en") <= -0.2  # case, curly apostrophe
    assert text.estimate("太贵了，我不需要", "zh") <= -0.2
    assert text.estimate("这个价格很划算，可以办理", "zh") >= 0.2
    assert text.estimate("不太贵", "zh") > text.estimate("太贵", "zh")
    for score in (text.estimate("好的好的好的" * 50, "zh"), text.estimate("great " * 100, "en")):
        assert -1.0 <= score <= 1.0


def test_lexicon_is_validated():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        TextEmotion(zh_model_dir=None, lexicon={"cheap": 2.0})
    with pytest.raises(ValueError, match="empty"):
        TextEmotion(zh_model_dir=None, lexicon={" ": 0.5})
