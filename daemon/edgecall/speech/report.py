"""What each campaign's callers will hear, checked where the files are (`check-config`).

For every campaign prompt: is it recorded (and can sox read the recording), or
synthesized, and by which voice. Voices are checked against their manifests
(every file's sha256, the language) without loading a model runtime, so the
check is quick and safe on a running box. A language whose callers can only
get a low-quality voice is a warning; a prompt nobody can speak is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecall.config.model_files import Finding, verified_dir
from edgecall.config.root import EdgecallConfig
from edgecall.inference.manifest import ModelFileError
from edgecall.speech import recorded
from edgecall.speech.speaker import campaign_prompts
from edgecall.speech.voices import voice_dir


@dataclass(frozen=True)
class VoiceStatus:
    label: str  # manifest name, or espeak-ng-<voice>
    quality: str | None  # "high" / "low"; None when unusable
    error: str | None = None


@dataclass(frozen=True)
class PromptLine:
    campaign: str
    language: str
    name: str  # situation, or followup.<topic>
    spoken_by: str  # "recording <file>" or "voice <label>", or "nobody"


def check_voices(
    cfg: EdgecallConfig, base_dir: Path
) -> tuple[dict[str, list[VoiceStatus]], list[Finding]]:
    models = cfg.models
    models_dir = models.dir if models.dir.is_absolute() else base_dir / models.dir
    status: dict[str, list[VoiceStatus]] = {}
    findings: list[Finding] = []
    for language, voices in models.tts.voices.items():
        status[language] = []
        for i, voice in enumerate(voices):
            loc = ("models", "tts", "voices", language, i)
            if voice.kind == "espeak":
                problem = _espeak_problem()
                label = f"espeak-ng-{voice.voice}"
                quality = None if problem else "low"
            else:
                label, quality, problem = _model_voice(voice_dir(voice, models_dir), language)
            if problem:
                findings.append(
                    Finding((*loc, "voice" if voice.kind == "espeak" else "dir"), problem)
                )
            status[language].append(VoiceStatus(label, quality, problem))
    return status, findings


def _model_voice(directory: Path, language: str) -> tuple[str, str | None, str | None]:
    try:
        manifest = verified_dir(directory)
    except ModelFileError as exc:
        hint = " (run `make voices`)" if "manifest missing" in str(exc) else ""
        return directory.name, None, f"{exc}{hint}"
    label = str(manifest.get("name", directory.name))
    if manifest.get("language") != language:
        return label, None, f"{label} speaks {manifest.get('language')!r}, not {language!r}"
    return label, str(manifest.get("quality", "high")), None


def _espeak_problem() -> str | None:
    try:
        from edgecall.speech.espeak_ng import find_data_dir, find_library

        find_library()
        find_data_dir()
    except Exception as exc:
        return f"espeak-ng is not usable here: {exc}"
    return None


def check_prompts(
    cfg: EdgecallConfig, base_dir: Path, voices: dict[str, list[VoiceStatus]]
) -> tuple[list[PromptLine], list[Finding]]:
    lines: list[PromptLine] = []
    findings: list[Finding] = []
    warned: set[str] = set()
    for name, campaign in cfg.campaigns.items():
        language = campaign.language
        usable = [v for v in voices.get(language, []) if v.quality is not None]
        first = usable[0] if usable else None
        if first is not None and first.quality == "low" and language not in warned:
            warned.add(language)
            findings.append(
                Finding(
                    ("models", "tts", "voices", language),
                    f"{language} prompts without a recording get only the low-quality voice "
                    f"{first.label}: record them, or install a better voice",
                    warning=True,
                )
            )
        for situation, prompt in campaign_prompts(campaign):
            section, key = (
                ("followups", situation.split(".", 1)[1])
                if situation.startswith("followup.")
                else ("prompts", situation)
            )
            loc = ("campaigns", name, section, key)
            if prompt.wav is not None:
                src = prompt.wav if prompt.wav.is_absolute() else base_dir / prompt.wav
                try:
                    recorded.convert(src)
                except recorded.RecordingError as exc:
                    fallback = f"; its text is spoken by {first.label} instead" if first else ""
                    findings.append(Finding((*loc, "wav"), f"{exc}{fallback}", warning=bool(first)))
                else:
                    lines.append(PromptLine(name, language, situation, f"recording {prompt.wav}"))
                    continue
            if first is None:
                findings.append(
                    Finding(
                        loc, f"no usable {language} voice and no recording: callers hear nothing"
                    )
                )
                lines.append(PromptLine(name, language, situation, "nobody"))
            else:
                lines.append(PromptLine(name, language, situation, f"voice {first.label}"))
    return lines, findings
