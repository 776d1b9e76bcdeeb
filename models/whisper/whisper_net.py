"""Whisper encoder/decoder in PyTorch, shaped for sherpa-onnx's offline Whisper.

sherpa-onnx (offline-whisper-model.cc) runs two ONNX graphs:

* encoder: mel (N, n_mels, T) -> n_layer_cross_k, n_layer_cross_v, each
  (n_text_layer, N, T/2, n_text_state): the decoder's cross-attention keys and
  values, computed once per utterance. T is variable (sherpa pads the
  utterance by `tail_paddings` frames, at most 3000).
* decoder: tokens (N, n) int64, in_n_layer_self_k_cache / v_cache
  (n_text_layer, N, n_text_ctx, n_text_state), n_layer_cross_k / v,
  offset (1,) int64 -> logits (N, n, n_vocab), out_n_layer_self_k_cache / v.
  The new keys/values are written at rows offset..offset+n of the cache.

Weights come from a CTranslate2 WhisperSpec (see ct2_model.py), whose fused
projections are kept fused: self-attention linear_0 = [q; k; v], cross
attention linear_0 = q and linear_1 = [k; v].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from ct2_model import Ct2Whisper, WhisperDims
from torch import Tensor, nn


def _linear(v: dict[str, np.ndarray], prefix: str) -> nn.Linear:
    w = torch.from_numpy(np.ascontiguousarray(v[f"{prefix}/weight"]))
    layer = nn.Linear(w.shape[1], w.shape[0], bias=f"{prefix}/bias" in v)
    layer.weight.data.copy_(w)
    if layer.bias is not None:
        layer.bias.data.copy_(torch.from_numpy(v[f"{prefix}/bias"]))
    return layer


def _norm(v: dict[str, np.ndarray], prefix: str) -> nn.LayerNorm:
    gamma = torch.from_numpy(v[f"{prefix}/gamma"])
    ln = nn.LayerNorm(gamma.shape[0], eps=1e-5)
    ln.weight.data.copy_(gamma)
    ln.bias.data.copy_(torch.from_numpy(v[f"{prefix}/beta"]))
    return ln


def _attend(q: Tensor, k: Tensor, v: Tensor, n_head: int, bias: Tensor | None) -> Tensor:
    n, tq, d = q.shape
    tk = k.shape[1]
    qh = q.view(n, tq, n_head, d // n_head).transpose(1, 2)
    kt = k.view(n, tk, n_head, d // n_head).permute(0, 2, 3, 1)  # one transpose, not two
    vh = v.view(n, tk, n_head, d // n_head).transpose(1, 2)
    scores = (qh @ kt) * ((d // n_head) ** -0.5)
    if bias is not None:
        scores = scores + bias
    out = torch.softmax(scores, dim=-1) @ vh
    return out.transpose(1, 2).reshape(n, tq, d)


class _Mlp(nn.Module):
    def __init__(self, v: dict[str, np.ndarray], prefix: str) -> None:
        super().__init__()
        self.ln = _norm(v, f"{prefix}/layer_norm")
        self.fc1 = _linear(v, f"{prefix}/linear_0")
        self.fc2 = _linear(v, f"{prefix}/linear_1")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(self.ln(x))))


class EncoderBlock(nn.Module):
    def __init__(self, v: dict[str, np.ndarray], prefix: str, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln = _norm(v, f"{prefix}/self_attention/layer_norm")
        self.qkv = _linear(v, f"{prefix}/self_attention/linear_0")
        self.out = _linear(v, f"{prefix}/self_attention/linear_1")
        self.mlp = _Mlp(v, f"{prefix}/ffn")

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(self.ln(x)).chunk(3, dim=-1)
        x = x + self.out(_attend(q, k, v, self.n_head, None))
        return x + self.mlp(x)


class Encoder(nn.Module):
    """mel -> stacked cross-attention keys and values of every decoder layer."""

    def __init__(self, m: Ct2Whisper) -> None:
        super().__init__()
        v, d = m.variables, m.dims
        self.conv1 = nn.Conv1d(d.n_mels, d.n_audio_state, 3, padding=1)
        self.conv2 = nn.Conv1d(d.n_audio_state, d.n_audio_state, 3, stride=2, padding=1)
        for conv, name in ((self.conv1, "conv1"), (self.conv2, "conv2")):
            conv.weight.data.copy_(torch.from_numpy(v[f"encoder/{name}/weight"]))
            conv.bias.data.copy_(torch.from_numpy(v[f"encoder/{name}/bias"]))
        self.register_buffer(
            "pos", torch.from_numpy(v["encoder/position_encodings/encodings"].copy())
        )
        self.blocks = nn.ModuleList(
            EncoderBlock(v, f"encoder/layer_{i}", d.n_audio_head) for i in range(d.n_audio_layer)
        )
        self.ln = _norm(v, "encoder/layer_norm")
        self.cross_kv = nn.ModuleList(
            _linear(v, f"decoder/layer_{i}/attention/linear_1") for i in range(d.n_text_layer)
        )

    def audio_features(self, mel: Tensor) -> Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.pos[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln(x)

    @staticmethod
    def pad_like_whisper(mel: Tensor) -> Tensor:
        """Turn sherpa-onnx's zero padding into Whisper's log-mel floor.

        sherpa-onnx normalises the features of the audio alone and appends
        `tail_paddings` frames of 0.0 (log-mel -4, loud noise to Whisper), while
        Whisper was trained with padding at the floor (max - 8 in log10, i.e.
        max - 2 after normalisation). An all-zero frame cannot come from audio,
        so such frames are reset to the floor. On our English test set this
        halves tiny.en's WER (10% -> 4.3%); padding further to the full 30 s
        window did not help (8.6%) and doubles encoder time.
        """
        floor = mel.amax(dim=(1, 2), keepdim=True) - 2.0
        is_pad = (mel == 0).all(dim=1, keepdim=True)
        return torch.where(is_pad, floor, mel)

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.audio_features(self.pad_like_whisper(mel))
        ks, vs = zip(*(proj(feats).chunk(2, dim=-1) for proj in self.cross_kv), strict=True)
        return torch.stack(ks), torch.stack(vs)


class DecoderBlock(nn.Module):
    def __init__(self, v: dict[str, np.ndarray], prefix: str, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.self_ln = _norm(v, f"{prefix}/self_attention/layer_norm")
        self.self_qkv = _linear(v, f"{prefix}/self_attention/linear_0")
        self.self_out = _linear(v, f"{prefix}/self_attention/linear_1")
        self.cross_ln = _norm(v, f"{prefix}/attention/layer_norm")
        self.cross_q = _linear(v, f"{prefix}/attention/linear_0")
        self.cross_out = _linear(v, f"{prefix}/attention/linear_2")
        self.mlp = _Mlp(v, f"{prefix}/ffn")

    def forward(
        self,
        x: Tensor,
        k_cache: Tensor,
        v_cache: Tensor,
        cross_k: Tensor,
        cross_v: Tensor,
        offset: Tensor,
        causal: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self.self_qkv(self.self_ln(x)).chunk(3, dim=-1)
        end = offset + x.shape[1]
        k_cache = torch.cat([k_cache[:, :offset], k, k_cache[:, end:]], dim=1)
        v_cache = torch.cat([v_cache[:, :offset], v, v_cache[:, end:]], dim=1)
        x = x + self.self_out(_attend(q, k_cache, v_cache, self.n_head, causal))
        q = self.cross_q(self.cross_ln(x))
        x = x + self.cross_out(_attend(q, cross_k, cross_v, self.n_head, None))
        return x + self.mlp(x), k_cache, v_cache


class Decoder(nn.Module):
    """One decoding step over n new tokens with an explicit self-attention cache."""

    def __init__(self, m: Ct2Whisper) -> None:
        super().__init__()
        v, d = m.variables, m.dims
        self.dims: WhisperDims = d
        # Stored transposed (d, n_vocab): the logits MatMul then has it as its weight
        # input B, which onnxruntime runs as an int8 DynamicQuantizeMatMul, and the
        # token lookup is a Gather on axis 1 of the same initializer, so int8
        # quantization stores the table once.
        emb = v["decoder/embeddings/weight"]
        self.embedding_t = nn.Parameter(torch.from_numpy(np.ascontiguousarray(emb.T)))
        self.register_buffer(
            "pos", torch.from_numpy(v["decoder/position_encodings/encodings"].copy())
        )
        self.blocks = nn.ModuleList(
            DecoderBlock(v, f"decoder/layer_{i}", d.n_text_head) for i in range(d.n_text_layer)
        )
        self.ln = _norm(v, "decoder/layer_norm")

    def forward(
        self,
        tokens: Tensor,
        in_k: Tensor,
        in_v: Tensor,
        cross_k: Tensor,
        cross_v: Tensor,
        offset: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        n = tokens.shape[1]
        start = offset[0]
        emb = self.embedding_t.index_select(1, tokens.reshape(-1))
        emb = emb.reshape(-1, tokens.shape[0], n).permute(1, 2, 0)
        x = emb + self.pos[start : start + n]
        # Query row i sits at position start+i and may see cache rows 0..start+i.
        rows = torch.arange(n, device=tokens.device).unsqueeze(1) + start
        cols = torch.arange(in_k.shape[2], device=tokens.device).unsqueeze(0)
        causal = torch.where(cols > rows, float("-inf"), 0.0)
        out_k, out_v = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, in_k[i], in_v[i], cross_k[i], cross_v[i], start, causal)
            out_k.append(k)
            out_v.append(v)
        x = self.ln(x)
        logits = torch.matmul(x, self.embedding_t)
        return logits, torch.stack(out_k), torch.stack(out_v)
