"""Acoustic emotion estimate of one caller utterance (call-rules section 1, weight 0.6).

The model (`models/emotion/acoustic_int8.onnx`, or the same network as
`acoustic_int8.tflite` for LiteRT builds such as Jetson; trained on Emo-DB, see the
model card) maps utterance features from `emotion_features` to negative/neutral/positive
probabilities. The estimate's score is P(positive) - P(negative), in [-1, 1].
Audio without enough voiced speech gives None (a missing estimate, not a guess), so
the text estimate decides alone. Only the last `max_seconds` are analysed, so a
runaway utterance costs bounded time and memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from edgecall.inference import emotion_features as ef
from edgecall.inference.emotion_features import AudioInputError
from edgecall.inference.manifest import ModelFileError, load_manifest, verified_path

MODEL_FILES = {"onnx": "acoustic_int8.onnx", "tflite": "acoustic_int8.tflite"}
LABELS = ("negative", "neutral", "positive")
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 96000

__all__ = ["AcousticEmotion", "AcousticEstimate", "AudioInputError", "ModelFileError"]


@dataclass(frozen=True)
class AcousticEstimate:
    score: float  # P(positive) - P(negative), in [-1, 1]
    probabilities: dict[str, float]  # negative / neutral / positive, summing to 1
    analysed_s: float  # seconds of audio analysed (at most max_seconds)
    voiced_s: float  # seconds with a detected pitch inside the analysed audio
    truncated: bool  # the utterance was longer than max_seconds; its start was ignored
    clipped_fraction: float  # share of samples at full scale (a level problem upstream)


class AcousticEmotion:
    """Loads the verified model once; `estimate` is safe to call from one worker thread."""

    def __init__(
        self,
        model_dir: Path,
        threads: int = 1,
        max_seconds: float = 10.0,
        min_voiced_s: float = 0.3,
        backend: Literal["onnx", "tflite"] = "onnx",
    ) -> None:
        if not 1 <= threads <= 16:
            raise ValueError(f"threads must be 1..16, got {threads}")
        if not 1.0 <= max_seconds <= 60.0:
            raise ValueError(f"max_seconds must be 1..60, got {max_seconds}")
        if backend not in MODEL_FILES:
            raise ValueError(f"backend must be one of {sorted(MODEL_FILES)}, got {backend!r}")
        model_dir = Path(model_dir)
        path = verified_path(model_dir, MODEL_FILES[backend])
        if backend == "onnx":
            self._run, meta = _onnx_runner(path, threads)
        else:
            self._run = _tflite_runner(path, threads)
            # a .tflite has no metadata table here: the manifest records what it was trained on
            manifest = load_manifest(model_dir)
            meta = {
                "feature_version": manifest.get("source", {})
                .get("acoustic", {})
                .get("feature_version"),
                "labels": ",".join(
                    manifest.get("metrics", {}).get("acoustic", {}).get("labels", [])
                ),
            }
        if meta.get("feature_version") != ef.FEATURE_VERSION:
            raise ModelFileError(
                f"{path}: trained on feature version {meta.get('feature_version')!r}, "
                f"this code computes {ef.FEATURE_VERSION!r}; retrain with make -C models/emotion"
            )
        if tuple(str(meta.get("labels", "")).split(",")) != LABELS:
            raise ModelFileError(f"{path}: unexpected labels {meta.get('labels')!r}")
        self.max_seconds = max_seconds
        self.min_voiced_s = min_voiced_s

    def estimate(self, pcm: np.ndarray, sample_rate: int) -> AcousticEstimate | None:
        """Estimate from mono PCM (int16/int32/float); None when there is too little speech."""
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        if not isinstance(sample_rate, int | np.integer) or not (
            MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
        ):
            raise AudioInputError(
                f"sample rate {sample_rate!r} not supported; "
                f"use {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz (8000 and 16000 are typical)"
            )
        sample_rate = int(sample_rate)
        arr = np.asarray(pcm)
        keep = int(self.max_seconds * sample_rate)
        truncated = arr.shape[0] > keep if arr.ndim else False
        x = ef.to_float_mono(arr[-keep:] if truncated else arr)  # slice first: bounded copy
        if len(x) == 0:
            return None
        clipped = float(np.mean(np.abs(x) >= 0.999))
        x = ef.resample(x, sample_rate, ef.SAMPLE_RATE)
        feats = ef.extract(x)
        if feats.voiced_s < self.min_voiced_s:
            return None
        probs = np.clip(self._run(feats.vector).astype(np.float64), 0.0, 1.0)
        probs = probs / probs.sum()
        return AcousticEstimate(
            score=float(np.clip(probs[2] - probs[0], -1.0, 1.0)),
            probabilities={label: float(p) for label, p in zip(LABELS, probs, strict=True)},
            analysed_s=feats.duration_s,
            voiced_s=feats.voiced_s,
            truncated=bool(truncated),
            clipped_fraction=clipped,
        )


Runner = Callable[[np.ndarray], np.ndarray]


def _onnx_runner(path: Path, threads: int) -> tuple[Runner, dict[str, str]]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for corrupt graphs
        raise ModelFileError(f"{path}: not a loadable ONNX model: {exc}") from None
    name = session.get_inputs()[0].name

    def run(vector: np.ndarray) -> np.ndarray:
        return session.run(None, {name: vector[None, :]})[0][0]

    return run, dict(session.get_modelmeta().custom_metadata_map)


def _tflite_runner(path: Path, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for corrupt files
        raise ModelFileError(f"{path}: not a loadable LiteRT model: {exc}") from None
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    if inp["shape"][-1] != ef.N_FEATURES or out["shape"][-1] != len(LABELS):
        raise ModelFileError(
            f"{path}: input/output shapes {inp['shape']}/{out['shape']} "
            f"do not fit {ef.N_FEATURES} features and {len(LABELS)} labels"
        )

    def run(vector: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], vector[None, :].astype(np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0].copy()

    return run
