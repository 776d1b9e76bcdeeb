"""Speech to text for one caller's audio: VAD-cut utterances, each recognised.

Three recognisers sit behind one interface:

* `whisper` (default): silero VAD (the `silero_vad.onnx` shipped in the
  `silero-vad` wheel, run here with onnxruntime) cuts the stream into
  utterances; each goes to a sherpa-onnx OfflineRecognizer running the int8
  Whisper this repository converts (`models/whisper/`). We run silero
  ourselves because sherpa-onnx 2.0.1's VoiceActivityDetector reported
  utterance starts up to 0.8 s late with the silero v6 model, cutting off the
  first words.
* `whisper_ct2`: the same VAD and utterances, each decoded by CTranslate2 from
  the pinned wheels' own CT2 files (`inference.ct2_whisper`), greedy or beam search.
* `streaming_transducer`: a sherpa-onnx zipformer transducer a user installs
  (its manifest lists its languages and the encoder/decoder/joiner/tokens
  files); its own endpoint rules, driven by the same VAD settings, delimit
  utterances.

With an end-of-turn model (`models.vad.end_of_turn`), the Whisper path judges
each pause of the caller once, when it reaches `ask_ms`: the utterance so far is
transcribed then (and kept, so a turn that ends at this pause waits for no
decoding) while the smart-turn model is asked on a second thread; when the
two agree the caller has finished, the turn ends right there, and when they
hear a hesitation or a phrase left open, the pause is held (`Endpointer`).

Chinese transcripts are converted to one script (`chinese_script`), whichever
recogniser wrote them.

Input is mono PCM at 16 kHz (or 8 kHz telephone audio, upsampled here) as
int16 or float in [-1, 1]. Every model file is checked against its manifest
before sherpa-onnx sees it, because sherpa-onnx ends the process on a bad file.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgecall.config.models import AsrModelConfig, ModelsConfig, VadConfig
from edgecall.inference.chinese_script import Script, to_script
from edgecall.inference.manifest import ModelFileError, load_manifest, sha256_of, verified_path
from edgecall.inference.turn import transcript_ends_turn

SAMPLE_RATE = 16000
SUPPORTED_RATES = (8000, 16000)
VAD_WINDOW = 512  # samples per silero step at 16 kHz
WHISPER_MAX_S = 29.0  # + 2 pads of 0.2 s stays under sherpa-onnx's 29.5 s limit
# Speech this short after a held pause is taken for a filler ("um", 嗯): see Endpointer.
FILLER = int(0.6 * SAMPLE_RATE)
SPEECH_PAD = SAMPLE_RATE // 5  # 200 ms kept before and after speech: Whisper needs the onset
UTTERANCE_KINDS = ("whisper", "whisper_ct2")  # VAD-cut utterances, each decoded whole


class AsrInputError(ValueError):
    """The audio handed to the recogniser is unusable (rate, shape, type)."""


class UtteranceModel(Protocol):
    """What the VAD path needs of a Whisper runtime: the words of one utterance."""

    def transcribe(self, samples: np.ndarray) -> str:
        """float32 speech at 16 kHz (at most WHISPER_MAX_S plus pads) -> text."""
        ...


class SherpaWhisper:
    """sherpa-onnx's offline Whisper recognizer as an UtteranceModel."""

    def __init__(self, recognizer: Any) -> None:
        self._recognizer = recognizer

    def transcribe(self, samples: np.ndarray) -> str:
        stream = self._recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, samples)
        self._recognizer.decode_stream(stream)
        return stream.result.text


@dataclass(frozen=True)
class Utterance:
    text: str
    language: str
    start_s: float
    end_s: float


# silero_vad.onnx of silero-vad 6.2.3 (MIT): the default VAD is checked like our own models.
SILERO_VAD_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"


def default_vad_model() -> Path:
    """silero_vad.onnx inside the installed silero-vad wheel, found without importing it.

    Importing the package would pull in torch (~2.5 s, ~550 MB RSS) for nothing.
    The file must be the pinned one: another silero version may need other settings.
    """
    spec = find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError("silero-vad package not installed: set models.vad.model")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelFileError(f"{path}: silero VAD model missing from the silero-vad package")
    if sha256_of(path) != SILERO_VAD_SHA256:
        raise ModelFileError(
            f"{path}: not the pinned silero_vad.onnx of silero-vad 6.2.3 (sha256 differs); "
            "install silero-vad==6.2.3 or set models.vad.model"
        )
    return path


def _role_files(model_dir: Path, roles: tuple[str, ...]) -> dict[str, Path]:
    """Map encoder/decoder/joiner/tokens to manifest-verified files in model_dir."""
    names = list(load_manifest(model_dir)["files"])
    chosen = {}
    for role in roles:
        matches = [
            n for n in names if (n.endswith("tokens.txt") if role == "tokens" else role in n)
        ]
        if len(matches) != 1:
            found = ", ".join(matches) or "none"
            raise ModelFileError(f"{model_dir}/manifest.json: want one {role} file, found {found}")
        chosen[role] = matches[0]
    return {role: verified_path(model_dir, name) for role, name in chosen.items()}


class _Upsample2x:
    """8 kHz -> 16 kHz, chunk by chunk, with the filter sherpa-onnx itself uses.

    Zero-stuffing, then a Hann-windowed sinc low-pass at 0.99 x 4 kHz spanning
    6 zero crossings (Kaldi's LinearResample settings, 25 taps). On the
    telephone test set this gave 16% WER against 21% for a sharper 63-tap
    filter: Whisper tolerates the soft roll-off better than a hard band edge.
    """

    CUTOFF_HZ = 0.99 * 4000
    ZEROS = 6

    def __init__(self) -> None:
        half = int(self.ZEROS / (2 * self.CUTOFF_HZ) * SAMPLE_RATE)
        t = np.arange(-half, half + 1) / SAMPLE_RATE
        window = 0.5 * (1 + np.cos(2 * np.pi * self.CUTOFF_HZ / self.ZEROS * t))
        kernel = 2 * self.CUTOFF_HZ * np.sinc(2 * self.CUTOFF_HZ * t) * window
        self._kernel = (kernel * 2 / kernel.sum()).astype(np.float32)  # gain 2: zero-stuffing
        self._history = np.zeros(self._kernel.size - 1, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        stuffed = np.zeros(2 * x.size, dtype=np.float32)
        stuffed[::2] = x
        padded = np.concatenate([self._history, stuffed])
        self._history = padded[padded.size - self._history.size :]
        return np.convolve(padded, self._kernel, mode="valid").astype(np.float32)


def _as_float(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise AsrInputError(f"audio must be mono (1-D), got shape {pcm.shape}")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype.kind == "f":
        return np.clip(np.nan_to_num(pcm.astype(np.float32)), -1.0, 1.0)
    raise AsrInputError(f"audio must be int16 or float PCM, got {pcm.dtype}")


class SileroVad:
    """Speech probability per 32 ms window from silero VAD (v5/v6 ONNX graph)."""

    CONTEXT = 64  # samples of the previous window the v5+ graph expects in front

    def __init__(self, model: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(model), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{model}: cannot load VAD model: {exc}") from None
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of the complete windows now available (remainder is kept)."""
        audio = np.concatenate([self._pending, audio])
        n = audio.size // VAD_WINDOW
        self._pending = audio[n * VAD_WINDOW :]
        probs = np.empty(n, dtype=np.float32)
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        for i in range(n):
            window = audio[i * VAD_WINDOW : (i + 1) * VAD_WINDOW]
            x = np.concatenate([self._context, window])[None, :]
            out, self._state = self._session.run(
                None, {"input": x, "state": self._state, "sr": rate}
            )
            probs[i] = out.reshape(-1)[0]
            self._context = window[-self.CONTEXT :]
        return probs


@dataclass(frozen=True)
class TurnVerdict:
    """What is known of a pause when it has lasted `end_of_turn.ask_ms`."""

    probability: float  # the turn model's P(the caller has finished)
    # the words so far end the turn (True), stop mid-phrase (False), or cannot tell (None);
    # see `inference.turn.transcript_ends_turn`
    words_end_turn: bool | None


class Endpointer:
    """Turns per-window speech probabilities into utterance boundaries (in samples).

    Speech starts at the first window at or above `threshold`; it ends once the
    probability has stayed below `threshold - 0.15` for `min_silence_ms`
    (hysteresis, as silero's own timestamps do). Bursts shorter than
    `min_speech_ms` are dropped and utterances longer than `max_utterance_s`
    are cut there. With `turn`, a pause that reaches `end_of_turn.ask_ms` is
    judged once, by `turn(start, now)`:

    * a `TurnVerdict`: below `hold_below` with words that do not end the turn, or
      below `hold_open_below` with words that stop mid-phrase, the caller is
      hesitating, and the pause must last `hold_ms` to end the turn; at or above
      `end_above` with words that end the turn, it ends right there; otherwise
      `min_silence_ms` decides;
    * a bare probability (the model alone): below `hold_below` the turn is held.

    A pause that follows a held one after less than FILLER of speech is held
    again unless the words end the turn: the caller said "um" and is still looking
    for the words (Whisper often writes the filler as a stray word, which the
    words cannot read).

    Pure logic: no audio, no model.
    """

    def __init__(
        self,
        cfg: VadConfig,
        max_utterance_s: float | None = None,
        turn: Callable[[int, int], float | TurnVerdict] | None = None,
    ) -> None:
        self.threshold = cfg.threshold
        self.neg_threshold = max(cfg.threshold - 0.15, 0.01)
        self.min_silence = int(cfg.min_silence_ms * SAMPLE_RATE / 1000)
        self.min_speech = int(cfg.min_speech_ms * SAMPLE_RATE / 1000)
        self.max_len = int((max_utterance_s or cfg.max_utterance_s) * SAMPLE_RATE)
        eot = cfg.end_of_turn
        self._turn = turn
        self._ask = int(eot.ask_ms * SAMPLE_RATE / 1000)
        self._hold_below = eot.hold_below
        self._hold_open_below = eot.hold_open_below
        self._hold = int(eot.hold_ms * SAMPLE_RATE / 1000)
        self._end_above = eot.end_above
        self.held = 0  # pauses the turn model held open (for tests and stats)
        self.early = 0  # turns ended at ask_ms, before min_silence_ms
        self.reset()

    def reset(self) -> None:
        self.position = 0  # samples consumed
        self.start: int | None = None  # start of the open utterance
        self._silence_from: int | None = None
        self._need = self.min_silence  # silence that ends this pause
        self._asked = False
        self._resumed: int | None = None  # where speech went on after a held pause

    @property
    def pause_start(self) -> int | None:
        """Where the current pause of the open utterance began: its end if it ends now."""
        return self._silence_from if self.start is not None else None

    def _judge(self) -> None:
        """The pause has lasted ask_ms: hold it, end the turn now, or leave it be."""
        assert self._turn is not None and self.start is not None
        verdict = self._turn(self.start, self.position)
        if isinstance(verdict, TurnVerdict):
            p, text = verdict.probability, verdict.words_end_turn
            hesitant = p < self._hold_below and text is not True
            hold = hesitant or (p < self._hold_open_below and text is False)
            if self._resumed is not None and self._silence_from is not None:
                hold = hold or (self._silence_from - self._resumed < FILLER and text is not True)
            early = self._end_above is not None and p >= self._end_above and text is True
        else:
            hold, early = float(verdict) < self._hold_below, False
        if hold:
            self._need = max(self._hold, self.min_silence)
            self.held += 1
        elif early:
            self._need = 0
            self.early += 1

    def feed(self, probs: np.ndarray) -> list[tuple[int, int]]:
        done = []
        for p in probs:
            here, self.position = self.position, self.position + VAD_WINDOW
            if self.start is None:
                if p >= self.threshold:
                    self.start, self._silence_from = here, None
                continue
            if p >= self.threshold:
                if self._silence_from is not None:  # the pause is over
                    self._resumed = here if self._need > self.min_silence else None
                self._silence_from, self._need, self._asked = None, self.min_silence, False
            elif p < self.neg_threshold and self._silence_from is None:
                self._silence_from = here
            silent = 0 if self._silence_from is None else self.position - self._silence_from
            if self._turn is not None and not self._asked and silent >= self._ask:
                self._asked = True
                if self._silence_from - self.start >= self.min_speech:
                    self._judge()
            if self._silence_from is not None and silent >= self._need:
                if self._silence_from - self.start >= self.min_speech:
                    done.append((self.start, self._silence_from))
                self.start = self._silence_from = self._resumed = None
                self._need, self._asked = self.min_silence, False
            elif self.position - self.start >= self.max_len:
                done.append((self.start, self.position))
                self.start, self._silence_from, self._resumed = self.position, None, None
                self._need, self._asked = self.min_silence, False
        return done

    def finish(self) -> list[tuple[int, int]]:
        """End of audio: close the open utterance if it is long enough."""
        out = []
        if self.start is not None:
            end = self._silence_from if self._silence_from is not None else self.position
            if end - self.start >= self.min_speech:
                out.append((self.start, end))
        self.reset()
        return out


def load_engine(
    model_dir: Path,
    *,
    kind: str = "whisper",
    language: str = "en",
    vad: VadConfig | None = None,
    threads: int = 1,
    beam_size: int = 1,
) -> Any:
    """The recognizer of a model directory (files checked against its manifest).

    Loaded once per worker and language, and shared by every call (about 180 MB
    and 0.3 s each otherwise): each call keeps its own VAD, endpointer and
    decoding stream, and a worker decodes one request at a time. Whisper is told
    the call's language rather than left to detect it: on the first second of 22
    Mandarin test utterances detection said English 5 times, and callers' short
    answers (好的, 不要) are that long; a forced Chinese decode still writes the
    English words a caller mixes in.
    """
    manifest = load_manifest(model_dir)
    covered = manifest.get("languages")
    if not covered:
        raise ModelFileError(f'{model_dir}/manifest.json: no "languages" list (e.g. ["en"])')
    if language not in covered:
        raise ModelFileError(
            f"{model_dir}/manifest.json: the model transcribes {', '.join(covered)}, "
            f"not {language!r}; list it under models.asr only for those languages"
        )
    if kind == "whisper_ct2":
        from edgecall.inference.ct2_whisper import Ct2Whisper

        return Ct2Whisper(model_dir, language=language, beam_size=beam_size, threads=threads)
    import sherpa_onnx  # heavy native module: loaded only where inference runs

    if kind == "whisper":
        files = _role_files(model_dir, ("encoder", "decoder", "tokens"))
        recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
            encoder=str(files["encoder"]),
            decoder=str(files["decoder"]),
            tokens=str(files["tokens"]),
            language=language,
            num_threads=threads,
            # silence frames after the utterance (sherpa-onnx's default is 1000, 10 s);
            # the model's manifest gives the measured value (its card has the figures)
            tail_paddings=_tail_paddings(model_dir, manifest),
        )
        return SherpaWhisper(recognizer)
    if kind == "streaming_transducer":
        files = _role_files(model_dir, ("encoder", "decoder", "joiner", "tokens"))
        cfg = vad or VadConfig()
        return sherpa_onnx.OnlineRecognizer.from_transducer(
            tokens=str(files["tokens"]),
            encoder=str(files["encoder"]),
            decoder=str(files["decoder"]),
            joiner=str(files["joiner"]),
            num_threads=threads,
            sample_rate=SAMPLE_RATE,
            enable_endpoint_detection=True,
            rule1_min_trailing_silence=max(2.4, cfg.min_silence_ms / 1000),
            rule2_min_trailing_silence=cfg.min_silence_ms / 1000,
            rule3_min_utterance_length=cfg.max_utterance_s,
        )
    raise ValueError(f"unknown ASR kind {kind!r}")


def _tail_paddings(model_dir: Path, manifest: dict[str, Any]) -> int:
    """The manifest's `runtime.tail_paddings` (frames of 10 ms), or -1: sherpa-onnx's own."""
    value = (manifest.get("runtime") or {}).get("tail_paddings", -1)
    if isinstance(value, bool) or not isinstance(value, int) or not (value == -1 or value > 0):
        raise ModelFileError(
            f"{model_dir}/manifest.json: runtime.tail_paddings must be a positive number of "
            f"10 ms frames, not {value!r}"
        )
    return value


_JUDGE_POOL: ThreadPoolExecutor | None = None


def _judge_pool() -> ThreadPoolExecutor:
    """One thread per process for the turn model, beside the decoding."""
    global _JUDGE_POOL
    if _JUDGE_POOL is None:
        _JUDGE_POOL = ThreadPoolExecutor(1, thread_name_prefix="turn-model")
    return _JUDGE_POOL


class UtteranceRecognizer:
    """Feed audio with `accept`; get finished utterances back; `flush` at call end.

    One per call; pass `engine` (from `load_engine`) to share the model between calls.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        kind: str = "whisper",
        language: str = "en",
        chinese_script: Script = "simplified",
        vad: VadConfig | None = None,
        threads: int = 1,
        beam_size: int = 1,
        engine: Any = None,
        turn_detector: Any = None,
    ) -> None:
        """`turn_detector` (an `inference.turn.TurnDetector`, shared by a worker's calls)
        holds the turn open while the caller hesitates, as `vad.end_of_turn` says."""
        self.kind = kind
        self.vad_config = vad or VadConfig()
        self.language = language
        self._chinese_script = chinese_script
        self._resampler: _Upsample2x | None = None
        self._input_rate: int | None = None
        if engine is None:
            engine = load_engine(
                model_dir,
                kind=kind,
                language=language,
                vad=vad,
                threads=threads,
                beam_size=beam_size,
            )
        if kind in UTTERANCE_KINDS:
            self._offline: UtteranceModel = engine
            self._vad = self._make_vad(threads)
            # Whisper sees at most 30 s (sherpa-onnx drops the rest): cut before that.
            self._turn_detector = turn_detector
            self._endpointer = Endpointer(
                self.vad_config,
                min(self.vad_config.max_utterance_s, WHISPER_MAX_S),
                turn=self._judge_pause if turn_detector is not None else None,
            )
            # the utterance transcribed when its pause was judged: (start, end) and what
            # it said
            self._ahead: tuple[tuple[int, int], Utterance | None] | None = None
            self._audio = np.zeros(0, dtype=np.float32)  # recent audio at 16 kHz
            self._audio_start = 0  # sample index of self._audio[0]
        else:
            self._online = engine
            self._stream = self._online.create_stream()
            self._seg_start = 0
        self._samples_seen = 0  # at 16 kHz, since the last reset

    @classmethod
    def from_config(
        cls,
        asr: AsrModelConfig,
        models: ModelsConfig,
        language: str,
        engine: Any = None,
        turn_detector: Any = None,
    ) -> UtteranceRecognizer:
        model_dir = asr.dir if asr.dir.is_absolute() else models.dir / asr.dir
        return cls(
            model_dir,
            engine=engine,
            kind=asr.kind,
            language=language,
            chinese_script=asr.chinese_script,
            vad=models.vad,
            threads=models.threads,
            beam_size=asr.beam_size,
            turn_detector=turn_detector,
        )

    def _judge_pause(self, start: int, now: int) -> TurnVerdict:
        """A pause of the open utterance has lasted ask_ms: transcribe the utterance as it
        would end here, and ask the turn model about the caller's audio so far.

        The words are kept, so a turn that ends at this pause, now or at min_silence_ms,
        waits for no decoding: they heard the same speech, with the part of the 200 ms pad
        after it that this chunk holds (the rest is silence the end would add). The model
        runs on a second thread meanwhile (both release the GIL): on an idle second core
        the judge costs the decoding alone."""
        asked = _judge_pool().submit(self._turn_probability, start, now)
        end = self._endpointer.pause_start
        finished = None
        try:
            if end is not None:
                utt = self._recognise_padded(start, end)
                self._ahead = ((start, end), utt)
                if utt is not None:
                    words = self.vad_config.end_of_turn.early_max_words
                    finished = transcript_ends_turn(utt.text, self.language, words)
        finally:
            probability = asked.result()
        return TurnVerdict(probability, finished)

    def _turn_probability(self, start: int, now: int) -> float:
        """The turn model's verdict on the caller's turn from its start (with the speech
        pad, as the recogniser will hear it) to now, pause included."""
        lo = max(start - SPEECH_PAD - self._audio_start, 0)
        hi = max(now - self._audio_start, lo)
        try:
            return self._turn_detector.probability(self._audio[lo:hi])
        except ValueError:  # too little audio to judge: the usual silence decides
            return 1.0

    def _make_vad(self, threads: int) -> SileroVad:
        model = self.vad_config.model or default_vad_model()
        if not Path(model).is_file():
            raise ModelFileError(f"{model}: VAD model missing")
        return SileroVad(Path(model), threads=threads)

    @property
    def buffered_seconds(self) -> float:
        """Audio held for the utterance in progress (bounded by max_utterance_s + pads)."""
        return self._audio.size / SAMPLE_RATE if self.kind in UTTERANCE_KINDS else 0.0

    def _to_16k(self, pcm: np.ndarray, sample_rate: int) -> np.ndarray:
        if sample_rate not in SUPPORTED_RATES:
            raise AsrInputError(
                f"sample rate {sample_rate} Hz is not supported; send 16000 Hz (or 8000 Hz)"
            )
        if self._input_rate is not None and sample_rate != self._input_rate:
            raise AsrInputError(
                f"sample rate changed from {self._input_rate} to {sample_rate} Hz mid-stream"
            )
        self._input_rate = sample_rate
        audio = _as_float(pcm)
        if sample_rate == SAMPLE_RATE:
            return audio
        if self._resampler is None:
            self._resampler = _Upsample2x()
        return self._resampler(audio)

    def accept(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Utterance]:
        """Add audio; return the utterances that ended within it."""
        audio = self._to_16k(pcm, sample_rate)
        self._samples_seen += audio.size
        if self.kind in UTTERANCE_KINDS:
            self._audio = np.concatenate([self._audio, audio])
            segments = self._endpointer.feed(self._vad(audio))
            out = self._recognise_segments(segments)
            self._trim_audio()
            return out
        self._stream.accept_waveform(SAMPLE_RATE, audio)
        return self._drain_online(final=False)

    def flush(self) -> list[Utterance]:
        """End of audio: return whatever utterance is still open, then start afresh."""
        if self.kind in UTTERANCE_KINDS:
            out = self._recognise_segments(self._endpointer.finish())
            self._ahead = None
            self._vad.reset()
            self._audio = np.zeros(0, dtype=np.float32)
            self._audio_start = 0
        else:
            self._stream.input_finished()
            out = self._drain_online(final=True)
            self._stream = self._online.create_stream()
            self._seg_start = 0
        self._samples_seen = 0
        self._input_rate = None
        self._resampler = None
        return out

    def transcribe(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Utterance]:
        """Whole recording in one call."""
        return self.accept(pcm, sample_rate) + self.flush()

    def _recognise_segments(self, segments: list[tuple[int, int]]) -> list[Utterance]:
        out = []
        ahead, ep = self._ahead, self._endpointer
        for start, end in segments:
            # transcribed when this pause was judged: the same speech
            if ahead is not None and ahead[0] == (start, end):
                out.extend([ahead[1]] if ahead[1] is not None else [])
                ahead = None
                continue
            utt = self._recognise_padded(start, end)
            if utt is not None:
                out.append(utt)
        # kept while its pause may still end the open utterance
        still_open = ahead is not None and ahead[0] == (ep.start, ep.pause_start)
        self._ahead = ahead if still_open else None
        return out

    def _recognise_padded(self, start: int, end: int) -> Utterance | None:
        """Speech [start, end) with SPEECH_PAD either side, as far as the kept audio goes."""
        lo = max(start - SPEECH_PAD, self._audio_start)
        hi = min(end + SPEECH_PAD, self._audio_start + self._audio.size)
        return self._recognise(self._audio[lo - self._audio_start : hi - self._audio_start], lo)

    def _trim_audio(self) -> None:
        """Keep only what a future utterance can need: memory stays bounded."""
        total = self._audio_start + self._audio.size
        open_start = self._endpointer.start
        keep_from = (
            total - SPEECH_PAD - VAD_WINDOW if open_start is None else open_start - SPEECH_PAD
        )
        keep_from = max(keep_from, self._audio_start)
        self._audio = self._audio[keep_from - self._audio_start :]
        self._audio_start = keep_from

    def _recognise(self, samples: np.ndarray, start: int) -> Utterance | None:
        text = self._tidy(self._offline.transcribe(samples))
        if not text:
            return None
        return Utterance(
            text=text,
            language=self.language,
            start_s=start / SAMPLE_RATE,
            end_s=(start + samples.size) / SAMPLE_RATE,
        )

    def _tidy(self, text: str) -> str:
        """Chinese in the configured script, whatever script Whisper chose."""
        text = text.strip()
        return to_script(text, self._chinese_script) if self.language == "zh" else text

    def _drain_online(self, final: bool) -> list[Utterance]:
        out = []
        while self._online.is_ready(self._stream):
            self._online.decode_stream(self._stream)
        if final or self._online.is_endpoint(self._stream):
            text = self._tidy(self._online.get_result(self._stream))
            if text:
                out.append(
                    Utterance(
                        text=text,
                        language=self.language,
                        start_s=self._seg_start / SAMPLE_RATE,
                        end_s=self._samples_seen / SAMPLE_RATE,
                    )
                )
            if not final:
                self._online.reset(self._stream)
                self._seg_start = self._samples_seen
        return out
