"""The shipped scene CNN and its leave-one-story-out siblings: figures on fresh
traces of every story, backend agreement, confidence at the shipped threshold,
file verification, and what it does with input it cannot judge."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import sys
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
LOGO_DIR = SCENE_DIR / "logo"
FILES = ("scene_int8.onnx", "scene_int8.tflite")
TEST_SEED = 4242  # train.TEST_SEED: the fresh traces the manifests' figures are on
TEST_PER_SCENE = 200
LOGO_ACCURACY = 0.95  # issue 19's targets
LOGO_RECALL = 0.90
AGREEMENT = 0.995
MAX_WRONG_SCENE_RATE = 0.02


def _scene_module(name: str):
    """A module of models/scene (they import each other by plain name)."""
    if str(SCENE_DIR) not in sys.path:
        sys.path.insert(0, str(SCENE_DIR))
    return importlib.import_module(name)


STORIES = tuple(_scene_module("stories").STORIES)


@pytest.fixture(scope="module")
def evaluate():
    return _scene_module("evaluate")


@pytest.fixture(scope="module")
def classifiers() -> dict[str, CnnSceneClassifier]:
    return {name: CnnSceneClassifier(SCENE_DIR / name, threads=1) for name in FILES}


@pytest.fixture(scope="module")
def fresh_sets() -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    stories = _scene_module("stories")
    return {s: stories.story_dataset(s, TEST_PER_SCENE, TEST_SEED, SCENES) for s in STORIES}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((SCENE_DIR / "manifest.json").read_text())


@pytest.fixture(scope="module")
def held_out_figures(evaluate, fresh_sets, shipped_config) -> dict[tuple[str, str], tuple]:
    """(story, file type) -> (figures, predictions) of the model trained without that story."""
    threshold = shipped_config.rules.redial.min_scene_confidence
    out = {}
    for story in STORIES:
        traces, y = fresh_sets[story]
        for kind in ("onnx", "tflite"):
            clf = CnnSceneClassifier(LOGO_DIR / f"scene_without_{story}.{kind}", threads=1)
            out[story, kind] = evaluate.classifier_figures(clf, traces, y, threshold)
    return out


NOT_MET = pytest.mark.xfail(
    strict=True, reason="issue 19 target not reached yet: see MODEL_CARD.md, Measured figures"
)


@NOT_MET
@pytest.mark.parametrize("kind", ["onnx", "tflite"])
@pytest.mark.parametrize("story", STORIES)
def test_a_story_it_was_not_trained_on(held_out_figures, story, kind):
    """Leave one story out: the model trained on the others, judged on this one."""
    m, _ = held_out_figures[story, kind]
    assert m["accuracy"] >= LOGO_ACCURACY, (story, kind, m["accuracy"], m["recall"])
    low = {scene: r for scene, r in m["recall"].items() if r < LOGO_RECALL}
    assert not low, (story, kind, low)


@NOT_MET
@pytest.mark.parametrize("story", STORIES)
def test_held_out_backends_agree(held_out_figures, story):
    onnx, tflite = (held_out_figures[story, kind][1] for kind in ("onnx", "tflite"))
    assert float((onnx == tflite).mean()) >= AGREEMENT


@NOT_MET
def test_confident_decisions_are_rarely_the_wrong_scene(held_out_figures):
    """Above the shipped min_scene_confidence, on stories the model never saw."""
    for (story, kind), (m, _) in held_out_figures.items():
        assert m["wrong_scene_rate"] <= MAX_WRONG_SCENE_RATE, (story, kind, m)


def test_the_build_judged_at_the_shipped_threshold(shipped_config, evaluate, manifest):
    threshold = shipped_config.rules.redial.min_scene_confidence
    assert threshold == evaluate.MIN_SCENE_CONFIDENCE == manifest["metrics"]["min_scene_confidence"]


def _assert_same_figures(measured: dict, reported: dict, what: object) -> None:
    """Equal up to rounding: int8 kernels may round differently on another CPU."""
    assert math.isclose(measured["accuracy"], reported["accuracy"], abs_tol=0.005), what
    assert math.isclose(measured["ece"], reported["ece"], abs_tol=0.01), what
    for scene, r in measured["recall"].items():
        assert math.isclose(r, reported["recall"][scene], abs_tol=0.02), (what, scene)


def test_manifests_quote_the_measured_figures(held_out_figures, manifest):
    """The card, README and bench quote the manifests; they must still be true."""
    metrics = manifest["metrics"]
    assert metrics["test_seed"] == TEST_SEED and metrics["test_per_scene"] == TEST_PER_SCENE
    logo = json.loads((LOGO_DIR / "manifest.json").read_text())["metrics"]["held_out_story"]
    assert metrics["leave_one_story_out"] == logo
    for (story, kind), (m, _) in held_out_figures.items():
        _assert_same_figures(m, logo[story][kind], (story, kind))


@pytest.mark.parametrize("story", STORIES)
def test_shipped_model_on_fresh_traces_of_every_story(
    evaluate, classifiers, fresh_sets, manifest, story
):
    traces, y = fresh_sets[story]
    preds = []
    for name, clf in classifiers.items():
        m, pred = evaluate.classifier_figures(clf, traces, y, evaluate.MIN_SCENE_CONFIDENCE)
        _assert_same_figures(m, manifest["metrics"]["fresh"][story][name.split(".")[1]], name)
        preds.append(pred)
    # better than the one-story model it replaces (38 % on B, 52 % on C; 98.6 % on A)
    assert float((preds[1] == y).mean()) >= {"a": 0.93, "b": 0.6, "c": 0.7}[story]
    assert float((preds[0] == preds[1]).mean()) >= 0.97


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


@pytest.mark.parametrize("story", STORIES)
def test_every_story_is_seeded_and_reports_like_a_trunk(story):
    stories = _scene_module("stories")
    a, la = stories.story_dataset(story, 20, 11)
    b, lb = stories.story_dataset(story, 20, 11)
    c, _ = stories.story_dataset(story, 20, 12)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))
    np.testing.assert_array_equal(la, lb)
    assert not all(
        len(x) == len(y) and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, c, strict=True)
    )
    assert np.bincount(la).tolist() == [20] * len(SCENES)
    for trace in a:
        assert 15 <= len(trace) <= 900
        valid = trace[~np.isnan(trace)]
        assert np.array_equal(valid, np.round(valid))  # modems report whole dB
        assert ((valid >= -140) & (valid <= -25)).all()  # RSRP, RSCP, RSSI ranges
