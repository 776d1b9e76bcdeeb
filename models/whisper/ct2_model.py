"""Read a CTranslate2 Whisper `model.bin` into float32 numpy arrays.

The format (CTranslate2 binary versions 5 and 6) is little-endian:

    u32 binary_version
    str spec_name            (u16 length incl. NUL, bytes)
    u32 spec_revision
    u32 n_variables
    n_variables x { str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, data }
    u32 n_aliases
    n_aliases x { str alias, str target }

dtype: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
A quantized weight `W` (int8/int16) comes with `W_scale`; CTranslate2 stores
`q = round(w * scale)`, so `w = q / scale` (scale per output row or scalar).
We read the file ourselves so the converter does not depend on the
CTranslate2 runtime, which is not packaged for every board we target.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16, widened below
}
_SUPPORTED_BINARY_VERSIONS = (5, 6)


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this reader understands."""


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


@dataclass(frozen=True)
class Ct2Whisper:
    spec: str
    binary_version: int
    variables: dict[str, np.ndarray]
    dims: WhisperDims


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> int:
        try:
            (value,) = struct.unpack_from(fmt, self.data, self.pos)
        except struct.error:
            raise Ct2FormatError(f"truncated model file at byte {self.pos}") from None
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take("<H")
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n or not raw.endswith(b"\0"):
            raise Ct2FormatError(f"bad string at byte {self.pos}")
        self.pos += n
        return raw[:-1].decode("utf-8")

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        if len(out) != n:
            raise Ct2FormatError(f"truncated variable data at byte {self.pos}")
        self.pos += n
        return out


def read_raw_variables(path: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """Return (spec name, binary version, variables as stored, aliases resolved)."""
    cur = _Cursor(Path(path).read_bytes())
    version = cur.take("<I")
    if version not in _SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(f"{path}: CTranslate2 binary version {version} is not supported")
    spec = cur.string()
    cur.take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.take("<I")):
        name = cur.string()
        rank = cur.take("<B")
        shape = tuple(cur.take("<I") for _ in range(rank))
        dtype_id = cur.take("<B")
        n_bytes = cur.take("<I")
        if dtype_id not in _DTYPES:
            raise Ct2FormatError(f"{path}: {name} has unknown dtype {dtype_id}")
        array = np.frombuffer(cur.raw(n_bytes), dtype=_DTYPES[dtype_id]).reshape(shape)
        if dtype_id == 5:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
    for _ in range(cur.take("<I")):
        alias, target = cur.string(), cur.string()
        variables[alias] = variables[target]
    if cur.pos != len(cur.data):
        raise Ct2FormatError(f"{path}: {len(cur.data) - cur.pos} trailing bytes")
    return spec, version, variables


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(name + "_scale")
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float32)
            if scale.ndim == 1:
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            out[name] = value.astype(np.float32) / scale
        elif value.dtype.kind == "f":
            out[name] = value.astype(np.float32)
        else:
            out[name] = value  # flags and counts stay integers
    return out


def _count(variables: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for n in variables if (m := pattern.match(n)))


def load(path: Path) -> Ct2Whisper:
    """Read and dequantize a CTranslate2 WhisperSpec model."""
    spec, version, raw = read_raw_variables(path)
    if spec != "WhisperSpec":
        raise Ct2FormatError(f"{path}: spec {spec!r} is not WhisperSpec")
    v = _dequantize(raw)
    conv1 = v["encoder/conv1/weight"]
    emb = v["decoder/embeddings/weight"]
    dims = WhisperDims(
        n_mels=conv1.shape[1],
        n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=conv1.shape[0],
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=_count(v, "encoder"),
        n_vocab=emb.shape[0],
        n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=emb.shape[1],
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=_count(v, "decoder"),
    )
    flags = {k: int(v[f"decoder/{k}"]) for k in ("scale_embeddings", "alibi")}
    if any(flags.values()) or not int(v["decoder/pre_norm"]):
        raise Ct2FormatError(f"{path}: unexpected decoder flags {flags}; not an OpenAI Whisper")
    return Ct2Whisper(spec=spec, binary_version=version, variables=v, dims=dims)
