"""Word and character error rates, as reported in the ASR model cards.

Text is normalised the same way for reference and hypothesis (case,
punctuation, apostrophes, and English number words zero..twenty written as
digits, since Whisper writes "1-2-3" for "one two three") so the rate measures
recognition rather than formatting. CER ignores spaces, the usual convention
for Chinese.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_PUNCT = re.compile(r"[^\w\s']|_")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
        + ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
        + ("eighteen", "nineteen", "twenty")
    )
}


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text).replace("'", "")
    return " ".join(_NUMBER_WORDS.get(w, w) for w in text.split())


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def _rate(pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> float:
    errors = sum(edit_distance(r, h) for r, h in pairs)
    total = sum(len(r) for r, _ in pairs)
    if total == 0:
        raise ValueError("references are empty; an error rate is undefined")
    return errors / total


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate: total word edits / total reference words."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return _rate(
        [(normalize(r).split(), normalize(h).split()) for r, h in zip(refs, hyps, strict=True)]
    )


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus character error rate over normalised text without spaces."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    return _rate(
        [
            (list(normalize(r).replace(" ", "")), list(normalize(h).replace(" ", "")))
            for r, h in zip(refs, hyps, strict=True)
        ]
    )
