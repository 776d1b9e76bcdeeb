"""Export the trained scene CNN to the two shipped int8 models and write the manifest.

- scene_int8.onnx: ONNX (opset 17) quantized with onnxruntime.quantization,
  static, QDQ format, int8 per-channel weights, uint8 activations, calibrated
  with MinMax on CALIBRATION traces from the training split.
- scene_int8.tflite: litert-torch PT2E static quantization (int8 per-channel
  weights, int8 activations, HistogramObserver calibration on the same traces):
  full-integer with an int8 input (the runtime quantizes the features with
  the scale and zero point stored in the file); the logits are dequantized
  and only the softmax runs in float32.

Both are evaluated on the 8:2 test split and on a fresh set from another
generator seed (the same one tests/models/test_scene.py uses); the figures go
into manifest.json. Run after train.py, via `make -C models scene`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import generate
import numpy as np
import torch
import train  # before edgecall: it puts daemon/ on sys.path
from train import HERE, SCENES, WORK, SceneCNN, WithSoftmax

from edgecall.inference.manifest import sha256_of
from edgecall.inference.scene import BACKENDS
from edgecall.inference.scene_features import CHANNELS, WINDOW_S, batch_features

ONNX_OUT = HERE / "scene_int8.onnx"
TFLITE_OUT = HERE / "scene_int8.tflite"
MANIFEST = HERE / "manifest.json"
CALIBRATION = 400
FRESH_SEED = 4242  # also in tests/models/test_scene.py
FRESH_PER_SCENE = 200


def _float_model() -> torch.nn.Module:
    net = SceneCNN()
    net.load_state_dict(torch.load(train.WEIGHTS, weights_only=True))
    return WithSoftmax(net).eval()


def export_onnx(model: torch.nn.Module, calib: np.ndarray) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    fp32 = WORK / "scene_fp32.onnx"
    pre = WORK / "scene_fp32_pre.onnx"
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
        str(ONNX_OUT),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def export_tflite(model: torch.nn.Module, calib: np.ndarray) -> None:
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
    edge.export(str(TFLITE_OUT))


def backend_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Predictions through the runtime's own backend code (edgecall.inference.scene)."""
    backend = BACKENDS[path.suffix](path, 2)
    return np.asarray([int(np.argmax(backend.probabilities(x[i : i + 1]))) for i in range(len(x))])


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


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    pkgs = ("torch", "litert-torch", "onnx", "onnxruntime", "ai-edge-litert", "numpy")
    return {p: version(p) for p in pkgs}


def main() -> int:
    t0 = time.monotonic()
    torch.manual_seed(train.SEED)
    torch.set_num_threads(2)
    x_train, _, x_test, y_test = train.dataset()
    calib = x_train[np.random.default_rng(train.SEED + 2).permutation(len(x_train))[:CALIBRATION]]
    fresh_traces, y_fresh = generate.generate_dataset(FRESH_PER_SCENE, FRESH_SEED, SCENES)
    x_fresh = batch_features(fresh_traces)

    model = _float_model()
    export_onnx(model, calib)
    export_tflite(model, calib)
    print(f"exported in {time.monotonic() - t0:.0f} s")

    metrics: dict[str, object] = {}
    for name, x, y in (("split_test", x_test, y_test), ("fresh_seed", x_fresh, y_fresh)):
        p_float = train.predict(model.net, x)
        p_onnx, p_tfl = backend_predict(ONNX_OUT, x), backend_predict(TFLITE_OUT, x)
        m = {
            "traces": len(y),
            "float_accuracy": round(float((p_float == y).mean()), 4),
            "onnx_int8_accuracy": round(float((p_onnx == y).mean()), 4),
            "tflite_int8_accuracy": round(float((p_tfl == y).mean()), 4),
            "onnx_tflite_agreement": round(float((p_onnx == p_tfl).mean()), 4),
            "tflite_confusion": train.confusion(y, p_tfl).tolist(),
        }
        metrics[name] = m
        print(
            f"{name} ({len(y)} traces): "
            + ", ".join(f"{k} {v}" for k, v in m.items() if k != "tflite_confusion")
        )
        print(train.format_confusion(np.asarray(m["tflite_confusion"])))
    metrics["fresh_seed"]["seed"] = FRESH_SEED  # type: ignore[index]
    metrics["tflite_tensor_types"] = tflite_int8_summary()
    metrics["train"] = json.loads(train.TRAIN_METRICS.read_text())

    manifest = {
        "name": "scene-cnn",
        "version": "1",
        "license": "Apache-2.0",
        "source": f"trained here from generate.py seed {train.SEED}",
        "toolchain": _versions(),
        "produced_by": "make -C models scene",
        "labels": list(SCENES),
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
        "files": {p.name: _file_entry(p) for p in (ONNX_OUT, TFLITE_OUT)},
        "metrics": metrics,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {MANIFEST.name} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
