"""The model files config.yaml names, checked on the disk they will be loaded from.

Validating config.yaml never touches the disk, so a technician's typo in a model
directory, or an English-only model listed for Chinese calls, would otherwise
surface only as a worker error during the first call. `edgecall check-config`
runs these checks where the files are, hashing every file against its
manifest as the workers will.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecall.config.root import EdgecallConfig
from edgecall.inference.manifest import ModelFileError, load_manifest, verified_path

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """One problem at a config key; a warning still lets the daemon do its work."""

    loc: Loc
    message: str
    warning: bool = False


def verified_dir(model_dir: Path) -> dict:
    """The directory's manifest, after every file it lists matched its sha256."""
    manifest = load_manifest(model_dir)
    for name in manifest["files"]:
        verified_path(model_dir, name)
    return manifest


def check_model_files(cfg: EdgecallConfig, base_dir: Path) -> list[Finding]:
    """Every problem with the models `cfg` names; relative paths resolve as the daemon's do."""
    models = cfg.models
    models_dir = models.dir if models.dir.is_absolute() else base_dir / models.dir
    findings: list[Finding] = []
    for i, asr in enumerate(models.asr):
        model_dir = asr.dir if asr.dir.is_absolute() else models_dir / asr.dir
        try:
            covered = verified_dir(model_dir).get("languages") or []
        except ModelFileError as exc:
            findings.append(Finding(("models", "asr", i, "dir"), str(exc)))
            continue
        for j, language in enumerate(asr.languages):
            if language not in covered:
                listed = ", ".join(covered) or "no language its manifest lists"
                findings.append(
                    Finding(
                        ("models", "asr", i, "languages", j),
                        f"{model_dir.name} transcribes {listed}, not {language}",
                    )
                )
    if models.acoustic_emotion is not None:
        d = models.acoustic_emotion
        try:
            verified_dir(d if d.is_absolute() else models_dir / d)
        except ModelFileError as exc:
            findings.append(Finding(("models", "acoustic_emotion"), str(exc)))
    turn = models.vad.end_of_turn.model
    if turn is not None:
        try:
            verified_dir(turn if turn.is_absolute() else models_dir / turn)
        except ModelFileError as exc:
            findings.append(Finding(("models", "vad", "end_of_turn", "model"), str(exc)))
    if models.scene is not None:
        path = models.scene if models.scene.is_absolute() else models_dir / models.scene
        try:
            verified_path(path.parent, path.name)
        except ModelFileError as exc:
            findings.append(Finding(("models", "scene"), str(exc)))
    return findings + _languages_without_asr(cfg)


def _languages_without_asr(cfg: EdgecallConfig) -> list[Finding]:
    """Where calls get a language no ASR model covers: their words go unanalysed."""
    covered = {language for asr in cfg.models.asr for language in asr.languages}
    uses: list[tuple[Loc, str]] = [
        (("appliance", "default_language"), cfg.appliance.default_language)
    ]
    uses += [(("campaigns", name, "language"), c.language) for name, c in cfg.campaigns.items()]
    uses += [
        (("sip", "auto_answer", i, "language"), rule.language)
        for i, rule in enumerate(cfg.sip.auto_answer)
        if rule.language is not None
    ]
    return [
        Finding(
            loc,
            f"no models.asr entry covers {language!r}: callers' words in these calls are not "
            "transcribed, so emotion, intent and transfer rules go without them",
            warning=True,
        )
        for loc, language in uses
        if language not in covered
    ]
