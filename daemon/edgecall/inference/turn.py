"""End-of-turn probability from the caller's audio (smart-turn v3.2, int8 ONNX).

The model (`models/smart-turn/`, BSD-2 by Daily/pipecat) is a Whisper-tiny
encoder with a classifier head that judges the last 8 s of a turn, so the
endpointer need not treat every pause alike. Measured here (MODEL_CARD.md) its
clear signal is hesitation ("um", "uh": p near 0.01); on fluent speech cut at a
pause it mostly still says "finished". One call costs ~85-110 ms on one core.

Input to the graph: `input_features`, float32 (batch, 80, 800); output `logits`,
(batch, 1), already a sigmoid probability of "turn complete". The features are
those the model was trained with (transformers' WhisperFeatureExtractor with
chunk_length=8, do_normalize=True) on audio prepared like smart-turn's own:

1. 16 kHz float in [-1, 1]; keep the last 8 s, or zero-pad *in front* to 8 s
   (128 000 samples), so the end of speech sits at the end of the window;
2. whole-window zero-mean unit-variance normalisation (padding included);
3. STFT: 400-sample periodic Hann window, hop 160, centred (200 samples of
   reflect padding both ends), power spectrum, 801 frames, the last dropped;
4. 80 Slaney-scale, Slaney-normalised triangular mel filters over 0-8 kHz;
5. log10 with floor 1e-10, clamp to (max - 8), then (x + 4) / 4.

`transcript_ends_turn` reads the other half of the verdict, the words: whether the
transcript of the turn so far ends the caller's turn (a finished question or short
answer), stops mid-phrase, or cannot tell. The endpointer ends a turn early only when
the model and the words agree (asr.Endpointer).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgecall.inference.manifest import ModelFileError, verified_path

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
SAMPLE_RATE = 16000
WINDOW_SAMPLES = 8 * SAMPLE_RATE
MIN_SAMPLES = SAMPLE_RATE // 10  # under 0.1 s there is nothing to judge
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = WINDOW_SAMPLES // HOP  # 800


class TurnInputError(ValueError):
    """The audio handed to the turn detector is unusable (shape, type, length, rate)."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear to 1 kHz, logarithmic above (librosa's default, as Whisper)."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    above = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step
    return np.where(hz < 1000.0, hz * 3.0 / 200.0, above)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


def mel_filters() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangles, each scaled to unit area (Slaney norm)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (upper - lower))


def _dft_basis() -> np.ndarray:
    """Hann-windowed real DFT as one (N_FFT, 2 * bins) matrix: a single BLAS call per input."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)  # periodic, like torch.hann_window
    k = np.arange(N_FFT // 2 + 1)
    angle = 2 * np.pi * np.outer(n, k) / N_FFT
    return np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]


_BASIS = _dft_basis().astype(np.float32)
_MEL = mel_filters().astype(np.float32)


def _last_8s(audio: np.ndarray) -> np.ndarray:
    """Validated float32 audio, the last 8 s, zero-padded in front."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise TurnInputError(f"audio must be mono (1-D), got shape {audio.shape}")
    if audio.dtype == np.int16:
        x = audio.astype(np.float32) / 32768.0
    elif audio.dtype.kind == "f":
        x = np.clip(np.nan_to_num(audio.astype(np.float32)), -1.0, 1.0)
    else:
        raise TurnInputError(f"audio must be int16 or float PCM, got {audio.dtype}")
    if x.size < MIN_SAMPLES:
        raise TurnInputError(
            f"{x.size} samples is too short to judge a turn; need {MIN_SAMPLES} (0.1 s at 16 kHz)"
        )
    x = x[-WINDOW_SAMPLES:]
    if x.size < WINDOW_SAMPLES:
        x = np.concatenate([np.zeros(WINDOW_SAMPLES - x.size, dtype=np.float32), x])
    return x


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(80, 800) float32 features of the model's 8 s window (see the module docstring)."""
    x = _last_8s(audio)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    spec = frames @ _BASIS  # (800, 2 * 201): real and imaginary parts
    half = N_FFT // 2 + 1
    power = spec[:, :half] ** 2 + spec[:, half:] ** 2
    mel = np.log10(np.maximum(power @ _MEL.T, 1e-10)).T
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


class TurnDetector:
    """P(the caller has finished their turn) for the audio of the turn so far.

    One instance can serve every call of a worker: `probability` keeps no state.
    """

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        path = verified_path(model_dir, MODEL_FILE)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: cannot load turn model: {exc}") from None
        inputs = [(i.name, i.shape[1:]) for i in self._session.get_inputs()]
        if inputs != [("input_features", [N_MELS, N_FRAMES])]:
            raise ModelFileError(f"{path}: not a smart-turn v3 graph (inputs {inputs})")

    def probability(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
        """End-of-turn probability in [0, 1] for mono int16/float audio ending now.

        Pass the turn from its start (plus any pause so far); only the last 8 s count.
        """
        if sample_rate != SAMPLE_RATE:
            raise TurnInputError(f"turn detector needs 16000 Hz audio, got {sample_rate} Hz")
        features = log_mel(audio)[None]
        (out,) = self._session.run(None, {"input_features": features})
        return float(np.clip(out.reshape(-1)[0], 0.0, 1.0))


# --- what the words say --------------------------------------------------------------

# A transcript that stops on one of these has not finished its sentence (Whisper often
# closes a cut-off clause with a full stop), unless it asks a question ("Who is it for?").
# Words that end short answers ("Yes, I do.", "Thank you.", "I think so.") are not here;
# "Sorry," mostly opens one ("Sorry, who is calling?"), and "Sorry?" asks.
_EN_OPEN_WORDS = frozenset((
    "um", "uh", "er", "erm", "ah", "hmm", "mm", "sorry", "and", "or", "but", "because", "cause",
    "if", "than", "which", "whose", "while", "to", "of", "for", "from", "with", "without",
    "about", "at", "into", "onto", "as", "like", "the", "a", "an", "my", "your", "our",
    "their", "i", "we", "he", "she", "they", "it's", "i'm", "i'd", "i'll", "we're",
    "you're", "they're", "there's", "let's", "what's", "ask",
))  # fmt: skip
_ZH_OPEN_ENDS = (
    "呃", "额", "那个", "这个", "就是", "然后", "还有", "和", "跟", "与", "或者", "因为",
    "所以", "但是", "可是", "不过", "如果", "而且", "我想", "我要", "的话", "比如",
    # a lead-in that announces the question still to come ("我想问一下，嗯，…")
    "问一下", "请问", "想问", "想知道", "想了解",
)  # fmt: skip
_CLOSED_MARKS = ".?!。？！"
_OPEN_MARKS = ",，、;；:：-—…"
_TRAILING = "\"'” )）」"  # quotes and brackets after the last mark


def transcript_finished(text: str, language: str) -> bool | None:
    """Does this transcript of a caller's turn so far read as a finished sentence?

    False: it stops on a comma, a dash or an ellipsis, or on a filler or a word that
    joins on to more ("about", "and", "呃", "然后"). True: it ends with a full stop, a
    question or an exclamation mark after a word that can close a sentence. None: no
    words, or no punctuation to go by (Whisper's Chinese often has none).
    """
    text = text.strip()
    if not text:
        return None
    if text.endswith(("...", "…")) or text[-1] in _OPEN_MARKS:
        return False
    body = text.rstrip(_CLOSED_MARKS + _TRAILING).strip()
    if not body:
        return None
    if language == "zh":
        if body.endswith(_ZH_OPEN_ENDS) or body[-1] in _OPEN_MARKS:
            return False
    else:
        if body[-1] in _OPEN_MARKS:
            return False
        words = body.lower().replace(",", " ").split()
        asks = text.rstrip(_TRAILING).endswith("?")
        if words and words[-1].strip(_TRAILING) in _EN_OPEN_WORDS and not asks:
            return False
    return True if text.rstrip(_TRAILING)[-1:] in _CLOSED_MARKS else None


# How a question starts (English, its last clause) or what it holds (Chinese): Whisper
# often writes "Sorry, who's calling." with a full stop.
_EN_QUESTION_STARTS = frozenset((
    "what", "what's", "who", "who's", "whom", "whose", "where", "where's", "when", "why",
    "how", "how's", "which", "is", "are", "am", "was", "were", "do", "does", "did", "can",
    "could", "will", "would", "should", "shall", "may", "have", "has", "isn't", "aren't",
    "don't", "doesn't", "didn't", "can't", "won't", "wouldn't",
))  # fmt: skip
_ZH_QUESTION_WORDS = (
    "吗", "呢", "多少", "什么", "哪", "几", "怎么", "为什么", "是不是", "有没有", "能不能",
    "可不可以", "要不要", "行不行", "对不对", "好不好",
)  # fmt: skip


def _asks(body: str, language: str) -> bool:
    """Does the last sentence of `body` (closing marks stripped) ask a question?"""
    last = re.split(r"[.!?。！？]", body)[-1] or body
    if language == "zh":
        return any(w in last for w in _ZH_QUESTION_WORDS)
    for part in re.split(r"[,，;]", last.lower()):
        words = part.split()
        if words and words[0].strip(_TRAILING) in _EN_QUESTION_STARTS:
            return True
    return False


def transcript_ends_turn(text: str, language: str, max_words: int) -> bool | None:
    """Do the words of a caller's turn so far end the turn?

    True: a finished question ("How much is it?", "Sorry, who's calling.", "多少钱"), or
    a finished answer of at most `max_words` words (Chinese: twice as many characters:
    "Yes.", "好的。"). False: they stop mid-phrase (`transcript_finished` is False).
    None: anything else, among it a finished statement, which callers often follow with
    another ("Please stop calling me. | Take me off your list."; measured in
    tests/bench/bench_turns.py).
    """
    finished = transcript_finished(text, language)
    # Chinese questions often come without a mark: there, asking is enough
    if finished is False or (finished is None and language != "zh") or not text.strip():
        return finished
    body = text.strip().rstrip(_CLOSED_MARKS + _TRAILING).strip()
    if body and _asks(body, language):
        return True
    if finished is None:
        return None
    hanzi = sum("\u4e00" <= c <= "\u9fff" for c in body)
    size = hanzi / 2 if language == "zh" else len(body.split())
    return True if size <= max_words else None
