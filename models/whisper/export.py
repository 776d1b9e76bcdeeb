"""Export the rebuilt Whisper to the two ONNX graphs sherpa-onnx runs, then int8."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from ct2_model import Ct2Whisper
from onnxruntime.quantization import QuantType, quantize_dynamic
from vocab import Vocabulary
from whisper_net import Decoder, Encoder

OPSET = 17
ENCODER_INPUTS = ["mel"]
ENCODER_OUTPUTS = ["n_layer_cross_k", "n_layer_cross_v"]
DECODER_INPUTS = [
    "tokens",
    "in_n_layer_self_k_cache",
    "in_n_layer_self_v_cache",
    "n_layer_cross_k",
    "n_layer_cross_v",
    "offset",
]
DECODER_OUTPUTS = ["logits", "out_n_layer_self_k_cache", "out_n_layer_self_v_cache"]


def encoder_metadata(m: Ct2Whisper, voc: Vocabulary, model_type: str) -> dict[str, str]:
    """Every key sherpa-onnx reads from the encoder, plus the descriptive ones."""
    d = m.dims
    meta = {
        "model_type": model_type,
        "version": "1",
        "maintainer": "edgecall",
        "comment": "converted from CTranslate2 weights by edgecall models/whisper/convert.py",
        "n_mels": d.n_mels,
        "n_audio_ctx": d.n_audio_ctx,
        "n_audio_state": d.n_audio_state,
        "n_audio_head": d.n_audio_head,
        "n_audio_layer": d.n_audio_layer,
        "n_vocab": d.n_vocab,
        "n_text_ctx": d.n_text_ctx,
        "n_text_state": d.n_text_state,
        "n_text_head": d.n_text_head,
        "n_text_layer": d.n_text_layer,
    }
    meta.update(voc.sherpa_metadata(is_multilingual=is_multilingual(m)))
    return {k: str(v) for k, v in meta.items()}


def is_multilingual(m: Ct2Whisper) -> bool:
    # OpenAI's rule: the English-only models have 51864 tokens, the others more.
    return m.dims.n_vocab >= 51865


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


@torch.no_grad()
def export_fp32(
    m: Ct2Whisper, voc: Vocabulary, model_type: str, out_dir: Path
) -> tuple[Path, Path]:
    """Write encoder.fp32.onnx and decoder.fp32.onnx into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    d = m.dims
    encoder, decoder = Encoder(m).eval(), Decoder(m).eval()
    mel = torch.rand(1, d.n_mels, 2 * d.n_audio_ctx)
    cross_k, cross_v = encoder(mel)
    enc_path, dec_path = out_dir / "encoder.fp32.onnx", out_dir / "decoder.fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (mel,),
            str(enc_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=ENCODER_INPUTS,
            output_names=ENCODER_OUTPUTS,
            dynamic_axes={
                "mel": {0: "n_audio", 2: "n_frames"},
                "n_layer_cross_k": {1: "n_audio", 2: "n_audio_ctx"},
                "n_layer_cross_v": {1: "n_audio", 2: "n_audio_ctx"},
            },
        )
        cache = torch.zeros(d.n_text_layer, 1, d.n_text_ctx, d.n_text_state)
        tokens = torch.tensor([[voc.sot, voc.sot, voc.sot]], dtype=torch.int64)
        offset = torch.tensor([1], dtype=torch.int64)
        torch.onnx.export(
            decoder,
            (tokens, cache, cache.clone(), cross_k, cross_v, offset),
            str(dec_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=DECODER_INPUTS,
            output_names=DECODER_OUTPUTS,
            dynamic_axes={
                "tokens": {0: "n_audio", 1: "n_tokens"},
                "in_n_layer_self_k_cache": {1: "n_audio"},
                "in_n_layer_self_v_cache": {1: "n_audio"},
                "n_layer_cross_k": {1: "n_audio", 2: "n_audio_ctx"},
                "n_layer_cross_v": {1: "n_audio", 2: "n_audio_ctx"},
                "logits": {0: "n_audio", 1: "n_tokens"},
                "out_n_layer_self_k_cache": {1: "n_audio"},
                "out_n_layer_self_v_cache": {1: "n_audio"},
            },
        )
    _add_metadata(enc_path, encoder_metadata(m, voc, model_type))
    _add_metadata(dec_path, {"model_type": model_type, "version": "1", "maintainer": "edgecall"})
    return enc_path, dec_path


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 weights for every MatMul and Gather.

    In the decoder the transposed token embedding is both the Gather table and
    the weight of the logits MatMul (the large output projection); the quantizer
    keys quantized initializers by name, so that d x 51864 table is stored once,
    as int8, and the projection runs as an int8 DynamicQuantizeMatMul.
    """
    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        op_types_to_quantize=["MatMul", "Gather"],
        weight_type=QuantType.QInt8,
    )
