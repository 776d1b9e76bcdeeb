"""Prompt text before it is spoken: slots filled in, cut into pieces a voice says one by one.

A prompt is synthesized piece by piece so that the caller hears the first piece
while the rest is being made: the wait before the first word is the time to
synthesize one short piece, not the whole prompt. Pieces are sentences, which
keep their intonation whole; only a long first sentence is cut after its first
clause (comma, semicolon, colon: where a speaker pauses anyway), since later
pieces are made while earlier ones play. A first clause too short to carry its
own intonation ("Sure,") takes the next clause along. A first clause that is
still long is cut once more, in English, before a word that opens a phrase
("Our office is open | from 9:30 to 18:00 on weekdays."), where a reader would
take a breath.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

# Values a prompt may name in braces, e.g. "{product}". The campaign's own values are
# known when the config loads (such a prompt can be cached); the call's only at call time.
CAMPAIGN_SLOTS = frozenset({"product"})
CALL_SLOTS = frozenset({"number_tail"})
SLOTS = CAMPAIGN_SLOTS | CALL_SLOTS

# A mark followed by a digit is inside a number ("3.5 GB", "9:30", "1,000"), not an end.
_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])(?!\d)\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：、])(?!\d)\s*")
# A piece longer than this many characters is cut at its clauses (about 2 s of speech).
_LONG_PIECE = {"zh": 14, "en": 40}
# Shorter pieces are joined to their neighbour: a lone "Sure," sounds clipped.
_SHORT_PIECE = {"zh": 4, "en": 12}
# Words that open a phrase: a long first clause may be cut before one of them, after at
# least _MIN_HEAD_WORDS words and with at least two words left for the next piece.
_PHRASE_OPENERS = {
    "en": frozenset(
        {
            "and", "or", "but", "so", "because", "if", "when", "while", "after", "before",
            "until", "from", "to", "at", "on", "in", "for", "with", "about", "than", "that",
            "which", "who",
        }
    )
}  # fmt: skip
_MIN_HEAD_WORDS = 3


def slots_in(text: str) -> set[str]:
    """The slot names a prompt text uses; ValueError for a malformed brace."""
    names = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            names.add(field)
    return names


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill the slots; a value the call does not know is left out, never spoken as '{x}'."""
    return string.Formatter().vformat(text, (), _Blank(values))


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def pieces(text: str, language: str) -> list[str]:
    """The text cut into the pieces it is synthesized in, in order; none are empty."""
    sentences = _split(_SENTENCE_END, text)
    if not sentences or len(sentences[0]) <= _LONG_PIECE.get(language, _LONG_PIECE["en"]):
        return sentences
    sep = "" if language == "zh" else " "
    clauses = _split(_CLAUSE_END, sentences[0])
    short = _SHORT_PIECE.get(language, _SHORT_PIECE["en"])
    n = 1
    while n < len(clauses) and len(sep.join(clauses[:n])) < short:
        n += 1
    head, rest = sep.join(clauses[:n]), sep.join(clauses[n:])
    if len(head) > _LONG_PIECE.get(language, _LONG_PIECE["en"]):
        head, more = _cut_at_phrase(head, language, short)
        rest = f"{more} {rest}".strip() if more else rest
    return [head, rest, *sentences[1:]] if rest else sentences


def _cut_at_phrase(text: str, language: str, short: int) -> tuple[str, str]:
    """The text cut before its first phrase opener that leaves a head of a few words."""
    openers = _PHRASE_OPENERS.get(language)
    words = text.split()
    if not openers:
        return text, ""
    for i in range(_MIN_HEAD_WORDS, len(words) - 1):
        head = " ".join(words[:i])
        if words[i].lower() in openers and len(head) >= short and not head.endswith(","):
            return head, " ".join(words[i:])
    return text, ""


def _split(pattern: re.Pattern[str], text: str) -> list[str]:
    return [p.strip() for p in pattern.split(text.strip()) if p.strip()]
