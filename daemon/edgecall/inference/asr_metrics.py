"""Word and character error rates, as reported in the ASR model cards.

Text is normalised the same way for reference and hypothesis (case,
punctuation, apostrophes, and English number words zero..twenty written as
digits, since Whisper writes "1-2-3" for "one two three") so the rate measures
recognition rather than formatting. CER ignores spaces, the usual convention
for Chinese. Where the reference is Chinese, both sides are also put in
simplified characters and digits are read out as Chinese numerals (Whisper
writes "三百" as "300" and often answers in traditional characters).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from edgecall.inference.chinese_script import to_script

_PUNCT = re.compile(r"[^\w\s']|_")
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
        + ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen")
        + ("eighteen", "nineteen", "twenty")
    )
}


_HAN = re.compile(r"[\u4e00-\u9fff]")
_DIGIT_RUN = re.compile(r"\d+")
_ZH_DIGITS = "零一二三四五六七八九"
_ZH_UNITS = ("", "十", "百", "千")


def _read_group(digits: str) -> str:
    """Up to four digits read with 千百十, zeros inside collapsed to one 零."""
    out: list[str] = []
    gap = False  # zeros skipped since the last digit written
    for i, d in enumerate(digits):
        if d == "0":
            gap = True
            continue
        if gap and out:
            out.append("零")
        gap = False
        out.append(_ZH_DIGITS[int(d)] + _ZH_UNITS[len(digits) - 1 - i])
    return "".join(out)


def chinese_number(digits: str) -> str:
    """How a digit string is read in Chinese: '300' -> 三百, '15' -> 十五,
    '2005' -> 二千零五, '10500' -> 一万零五百.

    Strings of more than eight digits, or with a leading zero, are codes and
    phone numbers and are read digit by digit ('0571' -> 零五七一).
    """
    if len(digits) > 8 or (len(digits) > 1 and digits[0] == "0"):
        return "".join(_ZH_DIGITS[int(d)] for d in digits)
    high, low = digits[:-4], digits[-4:]
    reading = _read_group(high) + "万" if high and int(high) else ""
    low_reading = _read_group(low)
    if reading and low_reading and low[0] == "0":
        reading += "零"
    reading = reading + low_reading or "零"
    return reading[1:] if reading.startswith("一十") else reading


def normalize(text: str, chinese: bool = False) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if chinese:
        text = _DIGIT_RUN.sub(lambda m: chinese_number(m.group()), to_script(text, "simplified"))
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
    """Corpus character error rate over normalised text without spaces (Chinese
    normalisation where the reference has Chinese characters)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = []
    for r, h in zip(refs, hyps, strict=True):
        chinese = bool(_HAN.search(r))
        pairs.append(
            (
                list(normalize(r, chinese).replace(" ", "")),
                list(normalize(h, chinese).replace(" ", "")),
            )
        )
    return _rate(pairs)
