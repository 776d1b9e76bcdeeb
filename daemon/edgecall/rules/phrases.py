"""Find lexicon phrases in a transcript: longest first, without overlap.

One scan over all categories at once, so that '不感兴趣' (negative) is not also
counted as '感兴趣' (positive), and 'too expensive' (negative) not also as
'expensive' (price). Chinese matches as substrings; English as whole words,
case-insensitively.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    category: str
    phrase: str
    start: int
    end: int


class PhraseMatcher:
    def __init__(self, categories: Mapping[str, Sequence[str]], language: str) -> None:
        entries = sorted(
            {(p.strip().lower(), c) for c, phrases in categories.items() for p in phrases},
            key=lambda e: (-len(e[0]), e[0]),
        )
        self._category = {}
        for phrase, category in entries:
            self._category.setdefault(phrase, category)  # first category listed for a phrase wins
        alternatives = "|".join(re.escape(p) for p in self._category)
        if not alternatives:
            self._pattern = None
        elif language == "en":
            # Word boundaries that also work next to apostrophes and digits.
            self._pattern = re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])")
        else:
            self._pattern = re.compile(f"(?:{alternatives})")

    def hits(self, text: str) -> list[Hit]:
        """Non-overlapping matches, leftmost first; at one position the longest phrase wins."""
        if self._pattern is None or not text:
            return []
        lowered = normalise(text)
        return [
            Hit(self._category[m.group(0)], m.group(0), m.start(), m.end())
            for m in self._pattern.finditer(lowered)
        ]

    def count(self, text: str) -> Counter[str]:
        return Counter(h.category for h in self.hits(text))


def normalise(text: str) -> str:
    """Lower-case and unify apostrophes and full-width punctuation so lexicons match."""
    return text.lower().replace("\u2019", "'").replace("\u3000", " ")
