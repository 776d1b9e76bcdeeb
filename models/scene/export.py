"""Export the trained scene CNN to the two shipped int8 models and write the manifest.

- scene_int8.onnx: ONNX (opset 17) quantized with onnxruntime.quantization,
  static, QDQ format, int8 per-channel weights, uint8 activations, calibrated
  with MinMax on CALIBRATION traces from the training split.
- scene_int8.tflite: litert-torch PT2E static quantization (int8 per-channel
  weights, int8 activations, HistogramObserver calibration on the same traces):
  full-integer with an int8 input (the runtime quantizes the features with
  the scale and zero point stored in the file); the logits are dequantized
  and only the softmax runs in float32.

The leave-one-story-out models (`train.py --logo`, the chosen feature set) are
exported the same way into logo/ with their own manifest, so the held-out
figures are those of int8 files run by `CnnSceneClassifier`, as the daemon runs
them. Every model is judged on fresh traces of each story (TEST_SEED, which
tests/models/test_scene.py also uses); the figures go into manifest.json. Run
after train.py, via `make -C models scene`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import evaluate
import numpy as np
import stories
import torch
import train  # before edgecall: it puts daemon/ on sys.path
from train import FEATURE_SETS, FEATURES, HERE, SCENES, WORK, SceneCNN, WithSoftmax

from edgecall.inference.manifest import sha256_of
from edgecall.inference.scene import CnnSceneClassifier
from edgecall.inference.scene_features import CHANNELS, WINDOW_S

ONNX_OUT = HERE / "scene_int8.onnx"
TFLITE_OUT = HERE / "scene_int8.tflite"
MANIFEST = HERE / "manifest.json"
LOGO_DIR = HERE / "logo"
CALIBRATION = 400


def _float_model(weights: Path) -> torch.nn.Module:
    net = SceneCNN(len(FEATURE_SETS[FEATURES]))
    net.load_state_dict(torch.load(weights, weights_only=True))
    return WithSoftmax(net).eval()


def export_onnx(model: torch.nn.Module, calib: np.ndarray, out: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    fp32 = WORK / f"{out.stem}_fp32.onnx"
    pre = WORK / f"{out.stem}_fp32_pre.onnx"
    torch.onnx.export(
        model,
        (torch.from_numpy(calib[:1]),),
        str(fp32),
        dynamo=False,  # the TorchScript exporter: no onnxscript needed
        opset_version=17,
        input_names=["trace"],
        output_names=["probs"],
        dynamic_axes={"trace": {0: "batch"}, "probs": {0: "batch"}},
    )
    quant_pre_process(str(fp32), str(pre))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calib[i : i + 1] for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {"trace": x}

    quantize_static(
        str(pre),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def export_tflite(model: torch.nn.Module, calib: np.ndarray, out: Path) -> None:
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    args = (torch.from_numpy(calib[:1]),)
    graph = torch.export.export(model, args).module()
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            graph(torch.from_numpy(calib[i : i + 1]))
    graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
    # exported from the eval-mode model (batch norm uses running statistics); the
    # graph module only keeps a stale `training` flag, which the converter warns about
    graph.training = False
    edge = litert_torch.convert(graph, args, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(out))


def tflite_int8_summary() -> dict[str, int]:
    """Counts of tensor types in the .tflite: evidence that it is integer inside."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(TFLITE_OUT))
    counts: dict[str, int] = {}
    for t in interp.get_tensor_details():
        name = np.dtype(t["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


def _file_entry(path: Path) -> dict[str, object]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def export_pair(weights: Path, calib: np.ndarray, onnx_out: Path) -> tuple[Path, Path]:
    """Both int8 files of one trained net; returns (onnx, tflite) paths."""
    model = _float_model(weights)
    tflite_out = onnx_out.with_suffix(".tflite")
    export_onnx(model, calib, onnx_out)
    export_tflite(model, calib, tflite_out)
    return onnx_out, tflite_out


def judge(files: tuple[Path, Path], story: str) -> dict[str, object]:
    """Figures of both files, through CnnSceneClassifier, on fresh traces of one story."""
    traces, y = train.test_set(story)
    out: dict[str, object] = {}
    preds = []
    for path in files:
        clf = CnnSceneClassifier(path, threads=1)
        m, pred = evaluate.classifier_figures(clf, traces, y, evaluate.MIN_SCENE_CONFIDENCE)
        out[path.suffix[1:]] = m
        preds.append(pred)
    out["onnx_tflite_agreement"] = round(float((preds[0] == preds[1]).mean()), 4)
    tflite = CnnSceneClassifier(files[1], threads=1)
    out["tflite_accuracy_by_fraction_seen"] = evaluate.accuracy_by_fraction(traces, y, tflite)
    return out


def _write_manifest(path: Path, files: list[Path], extra: dict[str, object]) -> None:
    manifest = {
        "name": "scene-cnn",
        "version": "2",
        "license": "Apache-2.0",
        "toolchain": _versions(),
        "produced_by": "make -C models scene",
        "labels": list(SCENES),
        **extra,
        "files": {p.name: _file_entry(p) for p in files},
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _brief(m: dict[str, object]) -> str:
    return ", ".join(
        f"{k} {m[k]}" for k in ("accuracy", "recall", "ece", "decided", "wrong_scene_rate")
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    pkgs = ("torch", "litert-torch", "onnx", "onnxruntime", "ai-edge-litert", "numpy")
    return {p: version(p) for p in pkgs}


def main() -> int:
    t0 = time.monotonic()
    torch.manual_seed(train.SEED)
    torch.set_num_threads(2)
    channels = FEATURE_SETS[FEATURES]
    names = tuple(stories.STORIES)
    LOGO_DIR.mkdir(exist_ok=True)
    logo: dict[str, object] = {}
    logo_files: list[Path] = []
    for held_out in names:
        rest = tuple(s for s in names if s != held_out)
        x, _ = train.training_set(rest, train.AUGMENT)
        calib = np.ascontiguousarray(x[:CALIBRATION][:, channels])
        weights = WORK / f"fold_{train.variant_name(FEATURES, train.AUGMENT)}_{held_out}.pt"
        files = export_pair(weights, calib, LOGO_DIR / f"scene_without_{held_out}.onnx")
        logo_files.extend(files)
        # a partial manifest so CnnSceneClassifier verifies and loads the fold files now
        _write_manifest(LOGO_DIR / "manifest.json", logo_files, {})
        logo[held_out] = judge(files, held_out)
        for kind in ("onnx", "tflite"):
            print(f"logo {held_out} {kind}: {_brief(logo[held_out][kind])}", flush=True)
    _write_manifest(
        LOGO_DIR / "manifest.json",
        logo_files,
        {
            "source": f"train.py --logo, seed {train.SEED}, "
            f"{train.variant_name(FEATURES, train.AUGMENT)}: "
            "scene_without_<story> was trained on every story but <story>",
            "input": {"shape": [1, CHANNELS, WINDOW_S], "features": FEATURES},
            "metrics": {"held_out_story": logo},
        },
    )

    x, _ = train.training_set(names, train.AUGMENT)
    calib = np.ascontiguousarray(x[:CALIBRATION][:, channels])
    files = export_pair(train.WEIGHTS, calib, ONNX_OUT)
    _write_manifest(MANIFEST, list(files), {})
    fresh = {story: judge(files, story) for story in names}
    for story, m in fresh.items():
        print(f"fresh {story} tflite: {_brief(m['tflite'])}", flush=True)
    print(f"exported and judged in {time.monotonic() - t0:.0f} s")
    _write_manifest(
        MANIFEST,
        list(files),
        {
            "source": f"trained here from stories {', '.join(names)} (stories.py), "
            f"seed {train.SEED}",
            "input": {
                "name": "trace",
                "shape": [1, CHANNELS, WINDOW_S],
                "dtype": "float32",
                "features": "edgecall.inference.scene_features.features",
            },
            "output": {"name": "probs", "shape": [1, len(SCENES)], "dtype": "float32"},
            "quantization": {
                "scene_int8.onnx": "static QDQ: int8 per-channel weights, uint8 activations "
                f"(MinMax on {CALIBRATION} training traces)",
                "scene_int8.tflite": "PT2E static full-integer: int8 per-channel weights, int8 "
                f"activations (histogram on {CALIBRATION} training traces), int8 input, "
                "float32 output",
            },
            "metrics": {
                "min_scene_confidence": evaluate.MIN_SCENE_CONFIDENCE,
                "test_seed": train.TEST_SEED,
                "test_per_scene": train.TEST_PER_SCENE,
                "leave_one_story_out": logo,
                "fresh": fresh,
                "feature_sets_float_logo": json.loads(train.LOGO_METRICS.read_text()),
                "tflite_tensor_types": tflite_int8_summary(),
                "train": json.loads(train.TRAIN_METRICS.read_text()),
            },
        },
    )
    print(f"wrote {MANIFEST.name} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
