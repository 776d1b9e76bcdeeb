"""Lexicons per language and the topic synonym table (call-rules.md sections 1-2)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from edgecall.config.base import ConfigModel, FieldError

Language = str  # 'zh' or 'en'; checked where the tables are keyed
LANGUAGES = ("zh", "en")


def _non_empty_phrases(values: list[str]) -> list[str]:
    for v in values:
        if not v.strip():
            raise ValueError("empty phrase")
    return values


class AnswerPhrases(ConfigModel):
    """What a caller's short answer means (rules/answers.py). All lists are matched in one
    scan, longest phrase first and without overlap, so '不要' is a no and not also '要', and
    'no problem' a yes and not also 'no'. Of several yes/no/unsure phrases the last one
    spoken wins ("yes... no, actually no" is a no)."""

    yes: list[str] = Field(..., min_length=1, description="Phrases that say yes to a question.")
    no: list[str] = Field(
        ...,
        min_length=1,
        description="Phrases that say no; list negations of yes words here (不要, 不好, "
        "'not interested') so that the longer phrase wins.",
    )
    unsure: list[str] = Field(
        default_factory=list,
        description="Phrases of doubt (不知道, 'not sure'); an answer whose last yes/no phrase "
        "is one of these is neither yes nor no.",
    )
    neutral: list[str] = Field(
        default_factory=list,
        description="Phrases that contain a yes, no or request word but mean none of them "
        "(不好意思, 好不好, 'right now'); they only keep those words from counting.",
    )
    do_not_call: list[str] = Field(
        ..., min_length=1, description="The caller wants no more calls (strongest request)."
    )
    human: list[str] = Field(..., min_length=1, description="The caller asks for a human agent.")
    repeat: list[str] = Field(
        ..., min_length=1, description="The caller asks to hear the last prompt again."
    )
    who: list[str] = Field(
        ..., min_length=1, description="The caller asks who is calling, or from where."
    )
    goodbye: list[str] = Field(
        ..., min_length=1, description="The caller ends the conversation (weakest request)."
    )
    callback: list[str] = Field(
        default_factory=list,
        description="Phrases that ask to be called again ('call me', 再打给我); a time the "
        "caller says books a callback only together with one of them (so 'does it start "
        "at 3?' does not). Empty: any time the caller says books one.",
    )

    _check = field_validator(
        "yes",
        "no",
        "unsure",
        "neutral",
        "do_not_call",
        "human",
        "repeat",
        "who",
        "goodbye",
        "callback",
    )(_non_empty_phrases)

    @model_validator(mode="after")
    def _each_phrase_once(self) -> AnswerPhrases:
        """A phrase in two lists would silently mean whichever the matcher meets first."""
        seen: dict[str, str] = {}
        for name in type(self).model_fields:
            for i, phrase in enumerate(getattr(self, name)):
                key = phrase.strip().lower()
                if seen.setdefault(key, name) != name:
                    raise FieldError((name, i), f"{phrase!r} is also listed in {seen[key]}")
        return self


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
    answers: AnswerPhrases = Field(
        ...,
        description="What a caller's short answer means: yes or no, and the requests a "
        "dialogue flow handles at any point (do not call, human, repeat, who, goodbye).",
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
