"""The shipped scene CNN run through the worker with the daemon's own registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecall.config.models import ModelsConfig
from edgecall.inference.scene import CnnSceneClassifier
from edgecall.inference.worker import DEFAULT_REGISTRY
from edgecall.rules.scene import SceneGuess

SCENE_DIR = Path(__file__).resolve().parents[2] / "models" / "scene"
ELEVATOR = [-80.0 + (i % 3) for i in range(60)] + [None] * 30 + [-81.0 + (i % 2) for i in range(30)]
STEADY = [-72.0 + (i % 4) for i in range(120)]


@pytest.mark.parametrize("model_file", ["scene_int8.tflite", "scene_int8.onnx"])
async def test_scene_classifier_runs_in_the_worker(make_client, model_file):
    config = ModelsConfig(dir=SCENE_DIR, scene=Path(model_file))
    client = await make_client(config, registry=DEFAULT_REGISTRY, preload=("scene",))
    assert "scene" in client.stats()["workers"][0]["loaded"]

    in_process = CnnSceneClassifier(SCENE_DIR / model_file)
    for trace, scene in ((ELEVATOR, "elevator"), (STEADY, "normal")):
        res = await client.call("scene", "classify", {"trace_dbm": trace})
        assert res.ok and isinstance(res.value, SceneGuess), res
        assert res.value.scene == scene
        assert res.value == in_process.classify(trace)

    res = await client.call("scene", "classify", {"trace_dbm": 42})  # not a sequence
    assert res.status == "error" and "SceneInputError" in res.reason
    assert (await client.call("scene", "classify", {"trace_dbm": STEADY})).ok


async def test_unconfigured_scene_model_is_an_error_result(make_client):
    client = await make_client(ModelsConfig(), registry=DEFAULT_REGISTRY)
    res = await client.call("scene", "classify", {"trace_dbm": STEADY})
    assert res.status == "error" and "models.scene is not configured" in res.reason
