"""The shipped scene CNN: accuracy on fresh generated traces, backend agreement,
file verification, and what it does with input it cannot judge."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecall.inference.manifest import ModelFileError
from edgecall.inference.scene import ABSTAIN, MIN_TRACE_S, CnnSceneClassifier
from edgecall.inference.scene_features import (
    CHANNELS,
    LEVEL_CENTER_DBM,
    LEVEL_SCALE_DB,
    WINDOW_S,
    SceneInputError,
    features,
)
from edgecall.rules.scene import SCENES, SceneClassifier, SceneGuess

SCENE_DIR = Path(__file__).resolve().parents[2] / "models" / "scene"
FILES = ("scene_int8.onnx", "scene_int8.tflite")
FRESH_SEED = 4242  # the seed export.py reports as "fresh_seed" in the manifest
FRESH_PER_SCENE = 200


def _load_generator():
    spec = importlib.util.spec_from_file_location("scene_generate", SCENE_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def classifiers() -> dict[str, CnnSceneClassifier]:
    return {name: CnnSceneClassifier(SCENE_DIR / name, threads=1) for name in FILES}


@pytest.fixture(scope="module")
def fresh_set() -> tuple[list[list[float | None]], np.ndarray]:
    gen = _load_generator()
    traces, labels = gen.generate_dataset(FRESH_PER_SCENE, FRESH_SEED, SCENES)
    return [gen.as_reported(t) for t in traces], labels


@pytest.fixture(scope="module")
def fresh_predictions(classifiers, fresh_set) -> dict[str, np.ndarray]:
    traces, _ = fresh_set
    return {
        name: np.array([SCENES.index(clf.classify(t).scene) for t in traces])
        for name, clf in classifiers.items()
    }


@pytest.mark.parametrize("name", FILES)
def test_accuracy_on_traces_from_another_seed(name, fresh_set, fresh_predictions):
    _, labels = fresh_set
    accuracy = float((fresh_predictions[name] == labels).mean())
    assert accuracy >= 0.95, f"{name}: accuracy {accuracy:.4f} on {len(labels)} fresh traces"
    for i, scene in enumerate(SCENES):
        recall = float((fresh_predictions[name][labels == i] == i).mean())
        assert recall >= 0.85, f"{name}: recall of {scene} is {recall:.3f}"


def test_backends_agree(fresh_predictions):
    onnx, tflite = (fresh_predictions[name] for name in FILES)
    agreement = float((onnx == tflite).mean())
    assert agreement >= 0.99, f"onnx and tflite agree on {agreement:.4f} of traces"


def test_manifest_figures_are_the_measured_ones(fresh_set, fresh_predictions):
    """The card and manifest quote the fresh-seed figures; they must still be true."""
    _, labels = fresh_set
    reported = json.loads((SCENE_DIR / "manifest.json").read_text())["metrics"]["fresh_seed"]
    assert reported["seed"] == FRESH_SEED and reported["traces"] == len(labels)
    for name, key in zip(FILES, ("onnx_int8_accuracy", "tflite_int8_accuracy"), strict=True):
        measured = float((fresh_predictions[name] == labels).mean())
        assert math.isclose(measured, reported[key], abs_tol=0.005), (name, measured)


@pytest.mark.parametrize("name", FILES)
def test_a_textbook_elevator_ride(classifiers, name):
    """Stable -80 dBm, 30 s with no service (doors shut), then -80 dBm again."""
    trace: list[float | None] = [-80.0 + (i % 3) for i in range(60)]
    trace += [None] * 30 + [-81.0 + (i % 2) for i in range(30)]
    assert classifiers[name].classify(trace).scene == "elevator"


@pytest.mark.parametrize("name", FILES)
def test_a_steady_strong_signal_is_normal(classifiers, name):
    clf: SceneClassifier = classifiers[name]  # what the redial rule is given
    guess = clf.classify([-72.0 + (i % 4) for i in range(120)])
    assert isinstance(guess, SceneGuess) and guess.scene == "normal"
    assert 0.5 < guess.confidence <= 1.0


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize(
    "trace",
    [
        [],
        [-80.0] * (MIN_TRACE_S - 1),
        [None] * 120,
        [math.nan] * 120,
        [math.inf, -math.inf, 1e9, -1e9, 35.0, -999.0, "abc", True] * 20,
    ],
    ids=["empty", "too-short", "all-none", "all-nan", "absurd"],
)
def test_input_it_cannot_judge_abstains(classifiers, name, trace):
    assert classifiers[name].classify(trace) == ABSTAIN


@pytest.mark.parametrize("name", FILES)
def test_absurd_samples_among_good_ones_are_ignored(classifiers, name):
    clean = [-75.0 + (i % 3) for i in range(120)]
    dirty = list(clean)
    for i in range(0, 120, 7):
        dirty[i] = [1e12, math.nan, 40.0, None, -5000.0][i % 5]
    guess = classifiers[name].classify(dirty)
    assert guess.scene in SCENES and 0.0 <= guess.confidence <= 1.0
    assert guess.scene == classifiers[name].classify(clean).scene


@pytest.mark.parametrize("name", FILES)
def test_hours_long_trace_reads_only_the_tail(classifiers, name):
    long_trace = np.full(4 * 3600, -70.0)
    long_trace[-WINDOW_S:] = -80.0
    assert classifiers[name].classify(long_trace) == classifiers[name].classify([-80.0] * WINDOW_S)


@pytest.mark.parametrize("bad", [None, 42, "-80,-81", {"a": 1}, np.zeros((2, 2))])
def test_a_trace_that_is_not_a_sequence_is_refused(classifiers, bad):
    with pytest.raises(SceneInputError):
        classifiers[FILES[0]].classify(bad)


def _copy_scene_dir(tmp_path: Path) -> Path:
    for name in (*FILES, "manifest.json"):
        shutil.copy(SCENE_DIR / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", FILES)
def test_a_flipped_byte_is_refused(tmp_path, name):
    model_dir = _copy_scene_dir(tmp_path)
    data = bytearray((model_dir / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_dir / name).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        CnnSceneClassifier(model_dir / name)


@pytest.mark.parametrize("name", FILES)
def test_a_missing_or_truncated_file_is_refused(tmp_path, name):
    model_dir = _copy_scene_dir(tmp_path)
    path = model_dir / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="truncated"):
        CnnSceneClassifier(path)
    path.unlink()
    with pytest.raises(ModelFileError, match="missing"):
        CnnSceneClassifier(path)


def test_a_manifest_with_unknown_labels_is_refused(tmp_path):
    model_dir = _copy_scene_dir(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["labels"] = ["normal", "spaceship"]
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="labels"):
        CnnSceneClassifier(model_dir / FILES[0])


def test_an_unknown_model_type_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="expected .onnx or .tflite"):
        CnnSceneClassifier(tmp_path / "scene.pt")


def test_features_are_right_aligned_with_carry_forward():
    x = features([-90.0, None, -70.0, math.nan, 500.0])
    assert x.shape == (CHANNELS, WINDOW_S) and x.dtype == np.float32
    tail = x[:, -5:]
    expected_dbm = np.array([-90.0, -90.0, -70.0, -70.0, -70.0])
    np.testing.assert_allclose(tail[0], (expected_dbm - LEVEL_CENTER_DBM) / LEVEL_SCALE_DB)
    np.testing.assert_array_equal(tail[1], [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(tail[2], [1, 1, 1, 1, 1])
    assert not x[:, :-5].any()


def test_features_fill_leading_gaps_with_the_first_valid_sample():
    x = features([None, None, -100.0])
    np.testing.assert_allclose(x[0, -3:], (-100.0 - LEVEL_CENTER_DBM) / LEVEL_SCALE_DB)


def test_generator_is_seeded_and_reports_like_a_trunk():
    gen = _load_generator()
    a, la = gen.generate_dataset(20, 11)
    b, lb = gen.generate_dataset(20, 11)
    c, _ = gen.generate_dataset(20, 12)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))
    np.testing.assert_array_equal(la, lb)
    assert not all(
        len(x) == len(y) and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, c, strict=True)
    )
    assert np.bincount(la).tolist() == [20] * len(SCENES)
    for trace in a:
        assert gen.MIN_CALL_S <= len(trace) <= gen.MAX_CALL_S
        valid = trace[~np.isnan(trace)]
        assert np.array_equal(valid, np.round(valid))
        assert ((valid >= -140) & (valid <= -44)).all()
