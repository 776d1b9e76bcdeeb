"""The influencing factor: why emotion or intent changed (call-rules.md section 2).

Seed 000, claim 2, step by step:
- negative understanding effect: a keyword shared by the previous and the current
  utterance; if none, the keyword of the previous utterance that the previous
  reply did not contain (what the caller asked and did not get);
- positive effect: a keyword shared by the previous reply and the current
  utterance; if none, the highest-weighted keyword of the previous reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecall.rules.keywords import KeywordExtractor, best_shared
from edgecall.rules.understanding import NEGATIVE, Understanding, UnderstandingJudge


@dataclass(frozen=True)
class Factor:
    keyword: str | None  # a topic name (e.g. 'price') or a plain keyword; None: nothing found
    is_topic: bool
    effect: str
    rule: str  # which branch of the seed's procedure found it
    understanding: Understanding
    word: str | None = None  # the caller's own word for it ('流量' for topic data)

    @property
    def topic(self) -> str | None:
        return self.keyword if self.is_topic else None


def influencing_factor(
    extractor: KeywordExtractor,
    judge: UnderstandingJudge,
    prev_utterance: str,
    prev_reply: str,
    utterance: str,
    language: str,
) -> Factor:
    understanding = judge.judge(prev_utterance, prev_reply, language)
    kw_prev = extractor.extract(prev_utterance, language)
    kw_reply = extractor.extract(prev_reply, language)
    kw_now = extractor.extract(utterance, language)

    def found(keyword, rule: str) -> Factor:
        # the caller's word for it when they said it, else the reply's
        said = next((k.word for k in kw_now + kw_prev if keyword and k.term == keyword.term), None)
        return Factor(
            keyword.term if keyword else None,
            bool(keyword and keyword.is_topic),
            understanding.effect,
            rule if keyword else "none",
            understanding,
            said or (keyword.word if keyword else None),
        )

    if understanding.effect == NEGATIVE:
        shared = best_shared(kw_prev, kw_now)
        if shared:
            return found(shared, "shared_by_previous_and_current_utterance")
        reply_terms = {k.term for k in kw_reply}
        missing = next((k for k in kw_prev if k.term not in reply_terms), None)
        return found(missing, "in_previous_utterance_not_in_reply")
    shared = best_shared(kw_reply, kw_now)
    if shared:
        return found(shared, "shared_by_previous_reply_and_current_utterance")
    return found(kw_reply[0] if kw_reply else None, "top_keyword_of_previous_reply")
