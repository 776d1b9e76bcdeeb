"""On-device models: where their files are and how inference runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgecall.config.base import ConfigModel


class AsrModelConfig(ConfigModel):
    kind: Literal["whisper", "streaming_transducer"] = Field(
        "whisper",
        description="'whisper': utterance model after VAD; 'streaming_transducer': zipformer.",
    )
    dir: Path = Field(..., description="Directory holding the model files and its manifest entry.")
    languages: list[Literal["zh", "en"]] = Field(
        ...,
        min_length=1,
        description="Call languages this model transcribes; a call's language (from its "
        "campaign or line) is forced on the model, which still writes English words heard in "
        "a Chinese call.",
    )
    chinese_script: Literal["simplified", "traditional"] = Field(
        "simplified",
        description="Script of Chinese transcripts (Whisper mixes both); the zh lexicons in "
        "this file must use the same script.",
    )


class VadConfig(ConfigModel):
    model: Path | None = Field(
        None, description="silero_vad.onnx; default: the file shipped in the silero-vad wheel."
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Speech probability above which a frame is speech."
    )
    min_silence_ms: int = Field(
        500, ge=100, le=5000, description="Silence that ends an utterance (the ASR endpoint)."
    )
    min_speech_ms: int = Field(
        250, ge=50, le=5000, description="Shorter speech bursts are ignored."
    )
    max_utterance_s: float = Field(
        20.0, gt=1, le=120, description="An utterance is cut after this long."
    )


class ModelsConfig(ConfigModel):
    dir: Path = Field(
        Path("/usr/share/edgecall/models"),
        description="Base directory of model files; relative model paths below resolve here.",
    )
    asr: list[AsrModelConfig] = Field(
        default_factory=list, description="ASR models; the first listing a call's language is used."
    )
    vad: VadConfig = Field(
        default_factory=VadConfig, description="Voice activity detection settings."
    )
    acoustic_emotion: Path | None = Field(
        None,
        description="Directory of the acoustic emotion model (manifest.json and the model "
        "files); absent means text emotion decides alone.",
    )
    acoustic_emotion_backend: Literal["onnx", "tflite"] = Field(
        "onnx", description="Which file of the acoustic emotion model to run."
    )
    acoustic_max_seconds: float = Field(
        10.0,
        gt=0.5,
        le=60,
        description="Only the last this many seconds of an utterance are "
        "analysed for emotion (bounds memory and time).",
    )
    scene: Path | None = Field(
        None,
        description="Scene model (.tflite or .onnx); absent means redial uses the default delay.",
    )
    threads: int = Field(1, ge=1, le=8, description="Threads each model may use.")
    workers: int = Field(
        1,
        ge=1,
        le=4,
        description="Inference worker processes; 2 doubles model throughput "
        "but competes with SIP media on a 2-core box.",
    )
    worker_queue_max: int = Field(
        64,
        ge=1,
        le=10000,
        description="Requests waiting for a worker; beyond this the oldest "
        "low-priority ones are dropped (and counted).",
    )
    worker_hang_grace_s: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Silence after a request's deadline before a worker is "
        "killed and restarted; must exceed the slowest real request.",
    )
    worker_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="CPU priority of the workers below the daemon's, so media threads win.",
    )
    worker_restart_max_s: float = Field(
        30.0,
        gt=0,
        description="Cap of the back-off before a crashed inference worker is restarted.",
    )
