"""The trained scene CNN behind the `SceneClassifier` protocol the redial rule uses.

One class, two backends chosen by the model file's extension: `.tflite` runs
with `ai-edge-litert` (the Jetson / small-box path; the shipped model takes an
int8 input, quantized here with the scale stored in the file), `.onnx` with
`onnxruntime`.
The file is checked against `manifest.json` before it is loaded, and the input
is prepared by `edgecall.inference.scene_features`, the module training used.

Input the model cannot judge (an empty trace, fewer than MIN_TRACE_S seconds,
or no usable sample at all) gives `SceneGuess("normal", 0.0)`: confidence 0
tells the caller the model abstained, and "normal" makes the redial rule fall
back to its default delay instead of inventing a scene.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecall.inference.manifest import ModelFileError, load_manifest, verified_path
from edgecall.inference.scene_features import (
    CHANNELS,
    WINDOW_S,
    clean_trace,
    features_of_clean,
)
from edgecall.rules.scene import SCENES, SceneGuess

MIN_TRACE_S = 10
ABSTAIN = SceneGuess("normal", 0.0)


class Backend(Protocol):
    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(1, CHANNELS, WINDOW_S) float32 -> (n_labels,) probabilities."""
        ...


class OnnxBackend:
    """onnxruntime session on the CPU provider."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # The model is QDQ int8. Fused into onnxruntime's integer kernels it answers
        # differently by CPU: without AVX512-VNNI the u8s8 path saturates, and an
        # elevator trace came out 'normal'. Run as written (dequantize, float op,
        # quantize) it gives the exported model's answers everywhere; 0.1 ms a trace.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFileError(f"{path}: onnxruntime cannot load it: {exc}") from None
        self._input = self._sess.get_inputs()[0].name

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._sess.run(None, {self._input: x})[0][0], dtype=np.float64)


class TfliteBackend:
    """LiteRT interpreter; quantizes the input itself when the model takes int8."""

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: LiteRT cannot load it: {exc}") from None
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        self._in, self._in_dtype = inp["index"], np.dtype(inp["dtype"])
        self._in_scale, self._in_zero = inp["quantization"]
        self._out, self._out_dtype = out["index"], np.dtype(out["dtype"])
        self._out_scale, self._out_zero = out["quantization"]
        self._lock = threading.Lock()  # one interpreter is not safe for concurrent invoke

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._in_dtype.kind == "f":
            return x.astype(self._in_dtype)
        info = np.iinfo(self._in_dtype)
        q = np.round(x / self._in_scale) + self._in_zero
        return np.clip(q, info.min, info.max).astype(self._in_dtype)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        q = self._quantize(x)
        with self._lock:
            self._interp.set_tensor(self._in, q)
            self._interp.invoke()
            y = np.asarray(self._interp.get_tensor(self._out)[0], dtype=np.float64)
        if self._out_dtype.kind != "f":
            y = (y - self._out_zero) * self._out_scale
        return y


BACKENDS = {".onnx": OnnxBackend, ".tflite": TfliteBackend}


class CnnSceneClassifier:
    """Scene of a call from its 1 Hz quality trace, by the shipped int8 CNN."""

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        model_path = Path(model_path)
        backend = BACKENDS.get(model_path.suffix.lower())
        if backend is None:
            raise ModelFileError(
                f"{model_path}: unknown scene model type {model_path.suffix!r} "
                "(expected .onnx or .tflite)"
            )
        path = verified_path(model_path.parent, model_path.name)
        labels = load_manifest(model_path.parent).get("labels")
        if (
            not isinstance(labels, list)
            or not labels
            or any(label not in SCENES for label in labels)
        ):
            raise ModelFileError(
                f"{model_path.parent / 'manifest.json'}: 'labels' must list scenes from {SCENES}"
            )
        self.labels: tuple[str, ...] = tuple(labels)
        self.path = path
        self._backend: Backend = backend(path, threads)
        probe = self._backend.probabilities(np.zeros((1, CHANNELS, WINDOW_S), np.float32))
        if probe.shape != (len(self.labels),):
            raise ModelFileError(
                f"{path}: model gives {probe.shape[0]} outputs, manifest lists "
                f"{len(self.labels)} labels"
            )

    def classify(self, trace_dbm: Sequence[float | None]) -> SceneGuess:
        """Most likely scene and its probability; ABSTAIN when the trace says nothing.

        Raises SceneInputError (a ValueError) when `trace_dbm` is not a sequence.
        """
        samples = clean_trace(trace_dbm)
        if len(samples) < MIN_TRACE_S or np.isnan(samples).all():
            return ABSTAIN
        probs = self._backend.probabilities(features_of_clean(samples)[np.newaxis])
        best = int(np.argmax(probs))
        return SceneGuess(self.labels[best], round(float(probs[best]), 4))
