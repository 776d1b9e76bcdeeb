"""Lexicons per language and the topic synonym table (call-rules.md sections 1-2)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from edgecall.config.base import ConfigModel

Language = str  # 'zh' or 'en'; checked where the tables are keyed
LANGUAGES = ("zh", "en")


def _non_empty_phrases(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("empty phrase")
    return values


class LanguagePack(ConfigModel):
    """Word lists of one language. Phrases match case-insensitively, longest first and
    without overlap, so '不想要' counts as negative and not also as '想要'."""

    positive_words: list[str] = Field(
        ..., min_length=1, description="Purchase-positive phrases counted for intent (indicator 2)."
    )
    negative_words: list[str] = Field(
        ..., min_length=1, description="Purchase-negative phrases counted for intent (indicator 3)."
    )
    price_words: list[str] = Field(
        ...,
        min_length=1,
        description="Phrases that make an utterance a price inquiry (indicator 4).",
    )
    emotion_positive: list[str] = Field(
        ..., min_length=1, description="Phrases showing a positive mood (text emotion estimate)."
    )
    emotion_negative: list[str] = Field(
        ..., min_length=1, description="Phrases showing a negative mood (text emotion estimate)."
    )
    stopwords: list[str] = Field(
        default_factory=list, description="Extra words never taken as keywords."
    )

    _check = field_validator(
        "positive_words", "negative_words", "price_words", "emotion_positive", "emotion_negative"
    )(_non_empty_phrases)


class Topic(ConfigModel):
    """A topic such as 'price': the keywords that mean it, and what a reply that
    addresses it looks like (used to judge the understanding effect)."""

    synonyms: dict[str, list[str]] = Field(
        ..., description="Keywords per language ('zh', 'en') that map to this topic."
    )
    answer_patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions; a reply matching one of them addresses the topic "
        "(e.g. a figure for 'price'). Empty: mentioning the topic addresses it.",
    )
    explanation: dict[str, str] = Field(
        default_factory=dict,
        description="Per language, the sentence added to the product introduction when this topic "
        "dominates past failures (section 6).",
    )

    @field_validator("synonyms")
    @classmethod
    def _languages(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for lang, words in value.items():
            if lang not in LANGUAGES:
                raise ValueError(f"unknown language {lang!r} (use zh or en)")
            _non_empty_phrases(words)
        return value

    @field_validator("answer_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return value
