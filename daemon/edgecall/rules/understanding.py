"""Understanding effect of one exchange (call-rules.md section 2, step 1).

Seed 000 judges whether the reply addressed what the caller asked: asked the
price and got "199, now 139" is positive; asked the price and got "our price is
very good" is negative. We judge it per topic: every topic the caller raised
must be addressed by the reply, i.e. the reply matches one of the topic's
`answer_patterns` (a figure for price), or mentions the topic when it has none.
An utterance with no known topic is addressed when it was not a question or
when the reply shares a keyword with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgecall.config.language import Topic
from edgecall.rules.keywords import KeywordExtractor, best_shared

POSITIVE = "positive"
NEGATIVE = "negative"

_QUESTION = {
    "zh": re.compile(r"[?？]|吗|呢|什么|怎么|多少|几|哪|为什么|是否|能不能|可不可以"),
    "en": re.compile(r"\?|\b(how|what|why|when|where|which|who|can|could|is|are|do|does)\b", re.I),
}


@dataclass(frozen=True)
class Understanding:
    effect: str  # POSITIVE or NEGATIVE
    asked_topics: tuple[str, ...]
    unanswered_topics: tuple[str, ...]


class UnderstandingJudge:
    def __init__(self, topics: Mapping[str, Topic], extractor: KeywordExtractor) -> None:
        self._extractor = extractor
        self._patterns = {
            name: [re.compile(p, re.IGNORECASE) for p in t.answer_patterns]
            for name, t in topics.items()
        }

    def judge(self, utterance: str, reply: str, language: str) -> Understanding:
        asked = self._extractor.topics_in(utterance, language)
        if not asked:
            is_question = bool(_QUESTION[language].search(utterance))
            shared = best_shared(
                self._extractor.extract(utterance, language),
                self._extractor.extract(reply, language),
            )
            ok = not is_question or shared is not None
            return Understanding(POSITIVE if ok else NEGATIVE, (), ())
        mentioned = set(self._extractor.topics_in(reply, language))
        unanswered = tuple(t for t in asked if not self._addresses(t, reply, mentioned))
        return Understanding(NEGATIVE if unanswered else POSITIVE, tuple(asked), unanswered)

    def _addresses(self, topic: str, reply: str, mentioned: set[str]) -> bool:
        patterns = self._patterns.get(topic) or []
        if patterns:
            return any(p.search(reply) for p in patterns)
        return topic in mentioned
