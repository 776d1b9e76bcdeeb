"""Whisper through CTranslate2 (ASR kind `whisper_ct2`): one utterance in, its words out.

CTranslate2 reads the CT2 files of the pinned wheels as they are (float16, loaded as
int8), so the model is the one sherpa-onnx runs after our ONNX conversion, with a
faster decoder that offers beam search. Measured on the same clips and one thread
(tests/bench/bench_asr_runtime.py, model cards): lower error and about 40 % less CPU.

Short inputs: the encoder takes features shorter than Whisper's 30 s when the
utterance is followed by FLOOR_PAD_S of silence (the log-mel floor) and decoding keeps
timestamps on (the model then closes the segment with a timestamp and ends, instead of
running on into the padding). A transcript that loops (a phrase repeated, or the
length cap reached) is decoded again on the full 30 s window, as Whisper was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecall.inference.manifest import ModelFileError, verified_path
from edgecall.inference.whisper_features import HOP, SAMPLE_RATE, log_mel

FILES = ("model.bin", "vocabulary.txt", "config.json")  # what ctranslate2 reads
FLOOR_PAD_S = 5.0  # silence after the utterance on the first, short decode
WINDOW_S = 30.0  # Whisper's own input length: the retry of a looping transcript
# Tokens an utterance can need per second (Mandarin: ~5 characters of up to 2 tokens):
# a decode that reaches the cap is looping, and the retry stops there too, so a looping
# utterance costs at most twice its honest decoding (a worker must not seem hung).
TOKENS_PER_S = 12
MIN_TOKENS = 24
MAX_TOKENS = 440  # Whisper's 448-token text context, less the prompt


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, codes, strict=True)}


_CHAR_TO_BYTE = _byte_level_alphabet()


def token_bytes(token: str) -> bytes:
    """The bytes a vocabulary.txt token (GPT-2 byte-level alphabet) stands for."""
    return bytes(_CHAR_TO_BYTE[ch] for ch in token)


def loops(ids: list[int], cap: int) -> bool:
    """The decoder went round in circles: it reached the length cap, or a unit of 1-8
    tokens repeats at least 3 times in a row over at least 8 tokens."""
    if len(ids) >= cap:
        return True
    for unit in range(1, 9):
        need = unit * (max(3, -(-8 // unit)) - 1)  # tokens equal to the one a unit before
        run = 0
        for i in range(unit, len(ids)):
            run = run + 1 if ids[i] == ids[i - unit] else 0
            if run >= need:
                return True
    return False


class Ct2Whisper:
    """One loaded CTranslate2 Whisper for one call language, shared by a worker's calls."""

    def __init__(
        self, model_dir: Path, *, language: str, beam_size: int = 1, threads: int = 1
    ) -> None:
        """`beam_size` 1 decodes greedily; the language is forced, as for sherpa-onnx."""
        paths = {name: verified_path(model_dir, name) for name in FILES}
        import ctranslate2  # native module: loaded only where inference runs

        try:
            self._model = ctranslate2.models.Whisper(
                str(model_dir),
                device="cpu",
                compute_type="int8",
                intra_threads=threads,
                inter_threads=1,
            )
        except (RuntimeError, ValueError) as exc:
            problem = f"{paths['model.bin']}: ctranslate2 cannot load it: {exc}"
            raise ModelFileError(problem) from None
        tokens = paths["vocabulary.txt"].read_text(encoding="utf-8").split("\n")
        self._tokens = tokens[:-1] if tokens and tokens[-1] == "" else tokens
        self._eot = self._tokens.index("<|endoftext|>")
        prompt = ["<|startoftranscript|>"]
        if self._model.is_multilingual:
            prompt += [f"<|{language}|>", "<|transcribe|>"]
        self._prompt = prompt
        self._beam_size = beam_size
        self.decodes = 0  # decoder runs, the loop retries included (for tests and stats)

    def transcribe(self, samples: np.ndarray) -> str:
        """Text of one utterance (float32 at 16 kHz, at most 29.5 s), specials dropped."""
        cap = min(MIN_TOKENS + int(TOKENS_PER_S * samples.size / SAMPLE_RATE), MAX_TOKENS)
        ids = self._decode(samples, samples.size / SAMPLE_RATE + FLOOR_PAD_S, cap)
        if loops(ids, cap):
            ids = self._decode(samples, WINDOW_S, cap)  # the cap bounds a loop's CPU
        data = b"".join(token_bytes(self._tokens[i]) for i in ids if i < self._eot)
        return data.decode("utf-8", errors="replace").strip()

    def _decode(self, samples: np.ndarray, pad_to_s: float, cap: int) -> list[int]:
        import ctranslate2

        frames = 2 * int(min(pad_to_s, WINDOW_S) * SAMPLE_RATE / HOP / 2)  # even: conv stride 2
        mel = log_mel(samples, self._model.n_mels, frames * HOP / SAMPLE_RATE)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None]))
        self.decodes += 1
        (result,) = self._model.generate(
            features,
            [self._prompt],
            beam_size=self._beam_size,
            max_length=cap + len(self._prompt),
        )
        return list(result.sequences_ids[0])
