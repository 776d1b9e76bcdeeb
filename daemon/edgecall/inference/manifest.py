"""Model files are verified against their manifest before use.

Each model directory under `models/` has a `manifest.json`:

    {"name": "scene-cnn", "version": "1", "license": "Apache-2.0",
     "source": {...provenance: package, version, sha256 of inputs...},
     "produced_by": "make -C models scene",
     "files": {"scene_int8.onnx": {"sha256": "<hex>", "bytes": 12345}},
     "metrics": {...measured figures, also in the model card...}}

A missing, truncated or altered file is refused with a message naming the file,
so a corrupted update never reaches inference.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


class ModelFileError(Exception):
    """A model file is missing, unlisted or does not match its manifest."""


def load_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: manifest missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelFileError(f"{path}: manifest has no 'files' table")
    return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(model_dir: Path, filename: str) -> Path:
    """Return `model_dir/filename` after checking size and sha256 against the manifest."""
    manifest = load_manifest(model_dir)
    entry = manifest["files"].get(filename)
    if entry is None:
        raise ModelFileError(f"{model_dir / 'manifest.json'}: {filename} is not listed")
    path = model_dir / filename
    if not path.is_file():
        raise ModelFileError(f"{path}: model file missing")
    size = path.stat().st_size
    if "bytes" in entry and size != entry["bytes"]:
        raise ModelFileError(f"{path}: {size} bytes, manifest says {entry['bytes']} (truncated?)")
    actual = sha256_of(path)
    if actual != entry.get("sha256"):
        raise ModelFileError(f"{path}: sha256 {actual[:12]}… does not match manifest")
    return path
