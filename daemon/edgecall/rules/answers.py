"""What a caller's short answer means, for the dialogue flows (issue 13, item 5).

The phrases are configuration (`languages.<lang>.answers` in config.yaml) and are
found by one PhraseMatcher scan over all lists: longest phrase first and without
overlap, Chinese as substrings, English as whole words. Negation therefore comes
from the lists: '不要' (no) is longer than '要' (yes), 'no problem' (yes) longer
than 'no', and 'neutral' phrases such as '好不好' or 'right now' use up yes/no
words that answer nothing. The code adds only what a list cannot say:

- yes/no: the last yes, no or unsure phrase decides ("yes... no, actually no" is
  no; "sure, well, I'm not sure" is neither);
- a one-character Chinese answer (是, 要, 好, 对, 行, 嗯) counts only where it can be
  an answer: at the start of the utterance or of a clause, or as nearly all of it;
  inside a sentence it is a verb or part of a word ('这是什么', '就是骗子');
- requests: the strongest one wins whatever the order, in REQUESTS order;
- the callback time comes from `callback_time` (numerals and day words are code),
  and counts only next to a `callback` phrase when the language has any ("call me
  after 3" books a callback, "does it start at 3?" does not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from edgecall.config.language import AnswerPhrases
from edgecall.rules.callback_time import callback_time
from edgecall.rules.phrases import Hit, PhraseMatcher

YesNo = Literal["yes", "no"]
Request = Literal["do_not_call", "human", "repeat", "who", "goodbye"]
REQUESTS: tuple[Request, ...] = ("do_not_call", "human", "repeat", "who", "goodbye")
_STANCES = ("yes", "no", "unsure")


@dataclass(frozen=True)
class Understood:
    yes_no: YesNo | None
    request: Request | None
    phrase: str | None  # the words that decided `request`, else `yes_no`
    callback_at: datetime | None  # aware, when the caller said when to call back
    callback_phrase: str | None


class AnswerReader:
    """Built once from the config's per-language answer phrases; shared by all calls."""

    def __init__(self, packs: Mapping[str, AnswerPhrases]) -> None:
        self._matchers = {
            lang: PhraseMatcher(
                {
                    name: getattr(phrases, name)
                    for name in (*REQUESTS, *_STANCES, "neutral", "callback")
                },
                lang,
            )
            for lang, phrases in packs.items()
        }
        self._needs_cue = {lang: bool(phrases.callback) for lang, phrases in packs.items()}

    def read(self, text: str, language: str, now: datetime) -> Understood:
        matcher = self._matchers.get(language)
        if matcher is None:
            raise ValueError(f"no answer phrases for language {language!r}")
        text = tidy(text, language)
        hits = [h for h in matcher.hits(text) if _stands_alone(h, text, language)]
        request = next((r for r in REQUESTS for h in hits if h.category == r), None)
        stance = next((h for h in reversed(hits) if h.category in _STANCES), None)
        yes_no = stance.category if stance and stance.category != "unsure" else None
        if request is not None:
            phrase = next(h.phrase for h in hits if h.category == request)
        else:
            phrase = stance.phrase if yes_no else None
        asked_back = not self._needs_cue[language] or any(h.category == "callback" for h in hits)
        when = callback_time(text, language, now) if asked_back else None
        return Understood(
            yes_no=cast(YesNo | None, yes_no),
            request=request,
            phrase=phrase,
            callback_at=when[0] if when else None,
            callback_phrase=when[1] if when else None,
        )


_CLAUSE_MARKS = frozenset("，。！？、；：,.!?;: ")


def _stands_alone(hit: Hit, text: str, language: str) -> bool:
    """A hit that can be an answer; one-character Chinese stances only where shown above."""
    if language != "zh" or hit.category not in _STANCES or hit.end - hit.start > 1:
        return True
    return hit.start == 0 or text[hit.start - 1] in _CLAUSE_MARKS or len(text) <= 3


def tidy(text: str, language: str) -> str:
    """ASR spacing is arbitrary: Chinese loses its spaces ('不 需要' is '不需要'), English
    keeps single ones, so that configured phrases match whatever the recogniser emitted."""
    if language == "zh":
        return re.sub(r"\s+", "", text)
    return " ".join(text.split())
