"""Whisper vocabulary: special token ids, sherpa-onnx tokens.txt and ONNX metadata.

CTranslate2 ships `vocabulary.txt` (one token per line, line number = id) in the
GPT-2 byte-level alphabet. sherpa-onnx wants `tokens.txt` lines of
`<base64 of the token's bytes> <id>` for the ordinary (BPE) tokens only, and the
special ids as metadata on the encoder. Ids are found by name, so tiny.en
(eot 50256) and multilingual models (eot 50257) both come out right.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

from edgecall.inference.ct2_whisper import token_bytes  # the runtime's own decoding

_LANG = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]
    suppress_ids: list[int]

    @classmethod
    def load(cls, vocabulary_txt: Path, config_json: Path | None) -> Vocabulary:
        tokens = Path(vocabulary_txt).read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        suppress: list[int] = []
        if config_json is not None and Path(config_json).is_file():
            suppress = json.loads(Path(config_json).read_text())["suppress_ids"]
        return cls(tokens=tokens, suppress_ids=suppress)

    def id_of(self, token: str) -> int:
        try:
            return self.tokens.index(token)
        except ValueError:
            raise KeyError(f"special token {token} missing from vocabulary") from None

    @property
    def eot(self) -> int:
        return self.id_of("<|endoftext|>")

    @property
    def sot(self) -> int:
        return self.id_of("<|startoftranscript|>")

    @property
    def languages(self) -> list[tuple[int, str]]:
        out = []
        for i in range(self.sot + 1, self.id_of("<|translate|>")):
            m = _LANG.match(self.tokens[i])
            if m:
                out.append((i, m.group(1)))
        return out

    def sherpa_tokens_txt(self) -> str:
        """Lines `<base64> <id>` for the BPE tokens (ids below <|endoftext|>)."""
        lines = [
            f"{base64.b64encode(token_bytes(t)).decode('ascii')} {i}"
            for i, t in enumerate(self.tokens[: self.eot])
        ]
        return "\n".join(lines) + "\n"

    def sherpa_metadata(self, is_multilingual: bool) -> dict[str, str]:
        sot = self.sot
        transcribe = self.id_of("<|transcribe|>")
        sot_sequence = [sot]
        if is_multilingual:
            sot_sequence += [self.id_of("<|en|>"), transcribe]
        langs = self.languages if is_multilingual else []
        no_speech = next(
            self.id_of(t) for t in ("<|nospeech|>", "<|nocaptions|>") if t in self.tokens
        )
        return {
            "sot_sequence": ",".join(map(str, sot_sequence)),
            "all_language_tokens": ",".join(str(i) for i, _ in langs),
            "all_language_codes": ",".join(c for _, c in langs),
            "sot": str(sot),
            "sot_index": "0",
            "eot": str(self.eot),
            "blank_id": str(self.id_of("Ġ")),
            "is_multilingual": str(int(is_multilingual)),
            "no_speech": str(no_speech),
            "non_speech_tokens": ",".join(str(i) for i in self.suppress_ids if i < self.eot),
            "transcribe": str(transcribe),
            "translate": str(self.id_of("<|translate|>")),
            "sot_prev": str(self.id_of("<|startofprev|>")),
            "sot_lm": str(self.id_of("<|startoflm|>")),
            "no_timestamps": str(self.id_of("<|notimestamps|>")),
        }

    def decode(self, ids: list[int]) -> str:
        """Text of BPE ids (specials dropped); used by the converter's self-check."""
        data = b"".join(token_bytes(self.tokens[i]) for i in ids if i < self.eot)
        return data.decode("utf-8", errors="replace")
