"""Keyword extraction with topic synonyms (call-rules.md section 2).

Topic synonyms are found first (longest first, so '多少钱' is one keyword and is
not split by the tokenizer) and reported under the topic's name: '多少钱' and
'price' are the same keyword, `price`. Tokens outside the synonyms give plain
keywords: Chinese through jieba's tokenizer weighted by TF-IDF with jieba's
shipped IDF table, English through our own term frequency with stopwords.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files

import jieba
import jieba.analyse

from edgecall.config.language import Topic
from edgecall.rules.phrases import PhraseMatcher, normalise

jieba.setLogLevel(logging.WARNING)
_IDF = jieba.analyse.default_tfidf.idf_freq
_MEDIAN_IDF = jieba.analyse.default_tfidf.median_idf
_JIEBA_STOPWORDS = frozenset(jieba.analyse.default_tfidf.stop_words)

# Weight of one mention of a topic: above any plain keyword (jieba TF-IDF stays below ~15),
# because topics are what the call centre acts on.
TOPIC_WEIGHT = 100.0
MAX_KEYWORDS = 10

_STOPWORD_FILE = files("edgecall") / "lexicons" / "en_stopwords.txt"
ENGLISH_STOPWORDS = frozenset(
    word.strip()
    for word in _STOPWORD_FILE.read_text("utf-8").splitlines()
    if word.strip() and not word.startswith("#")
)
_EN_TOKEN = re.compile(r"[a-z0-9][a-z0-9'-]*")
_ZH_SKIP = re.compile(r"^[\W\d_]+$")


@dataclass(frozen=True)
class Keyword:
    term: str  # the topic name for synonyms, else the word itself (lower case)
    weight: float
    is_topic: bool
    word: str = ""  # as said: the first synonym that named the topic ('流量' for data)


class KeywordExtractor:
    def __init__(
        self,
        topics: Mapping[str, Topic],
        stopwords: Mapping[str, Sequence[str]],
    ) -> None:
        self._topic_matchers = {
            lang: PhraseMatcher(
                {name: t.synonyms.get(lang, []) for name, t in topics.items()}, lang
            )
            for lang in ("zh", "en")
        }
        self._stopwords = {
            lang: {w.lower() for w in stopwords.get(lang, [])}
            | (ENGLISH_STOPWORDS if lang == "en" else set())
            for lang in ("zh", "en")
        }

    def topics_in(self, text: str, language: str) -> list[str]:
        """Topics mentioned in `text`, in order of first mention."""
        seen: dict[str, None] = {}
        for hit in self._topic_matchers[language].hits(text):
            seen.setdefault(hit.category, None)
        return list(seen)

    def extract(self, text: str, language: str) -> list[Keyword]:
        """Keywords of `text`, highest weight first (ties: first mentioned first)."""
        if not text or not text.strip():
            return []
        lowered = normalise(text)
        hits = self._topic_matchers[language].hits(text)
        topic_counts = Counter(h.category for h in hits)
        taken = [(h.start, h.end) for h in hits]
        plain = self._zh(lowered, taken) if language == "zh" else self._en(lowered, taken)
        said = {}
        for h in hits:
            said.setdefault(h.category, text[h.start : h.end])
        keywords = [Keyword(t, TOPIC_WEIGHT * n, True, said[t]) for t, n in topic_counts.items()]
        keywords += [Keyword(w, weight, False, w) for w, weight in plain if w not in topic_counts]
        order = {k.term: i for i, k in enumerate(keywords)}
        keywords.sort(key=lambda k: (-k.weight, order[k.term]))
        return keywords[:MAX_KEYWORDS]

    def _zh(self, text: str, taken: list[tuple[int, int]]) -> list[tuple[str, float]]:
        """TF-IDF over jieba tokens (jieba's own IDF table), skipping tokens that overlap a
        topic synonym, so a synonym is neither counted twice nor cut into fragments.
        HMM new-word discovery is off: it invents tokens such as '期是' from '合约期是';
        domain words belong in the topic table instead."""
        stop = self._stopwords["zh"] | _JIEBA_STOPWORDS
        words = [
            w
            for w, start, end in jieba.tokenize(text, HMM=False)
            if len(w.strip()) > 1
            and w not in stop
            and not _ZH_SKIP.match(w)
            and not _overlaps(start, end, taken)
        ]
        counts = Counter(words)
        total = sum(counts.values()) or 1
        return [(w, n / total * _IDF.get(w, _MEDIAN_IDF)) for w, n in counts.items()]

    def _en(self, text: str, taken: list[tuple[int, int]]) -> list[tuple[str, float]]:
        stop = self._stopwords["en"]
        tokens = [
            m.group(0).strip("'-")
            for m in _EN_TOKEN.finditer(text)
            if not _overlaps(m.start(), m.end(), taken)
        ]
        counts = Counter(t for t in tokens if len(t) > 1 and t not in stop)
        # Term frequency, with longer words slightly ahead: they carry more meaning.
        return [(w, n + len(w) / 100) for w, n in counts.items()]


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def best_shared(a: Sequence[Keyword], b: Sequence[Keyword]) -> Keyword | None:
    """The keyword present in both lists with the highest combined weight."""
    weights_b = {k.term: k.weight for k in b}
    shared = [(k.weight + weights_b[k.term], i, k) for i, k in enumerate(a) if k.term in weights_b]
    return max(shared, key=lambda s: (s[0], -s[1]))[2] if shared else None
