"""Chinese transcripts are put in one script, phrase by phrase (OpenCC)."""

from __future__ import annotations

import pytest

from edgecall.inference.chinese_script import to_script


@pytest.mark.parametrize(
    ("text", "simplified", "traditional"),
    [
        ("一句話為什麼", "一句话为什么", "一句話爲什麼"),  # OpenCC writes 爲 for 为
        ("頭髮和發展", "头发和发展", "頭髮和發展"),  # 发 -> 髮 or 發 by phrase
        ("乾燥，幹活", "干燥，干活", "乾燥，幹活"),  # 干 -> 乾 or 幹 by phrase
    ],
)
def test_both_directions_by_phrase(text, simplified, traditional):
    assert to_script(text, "simplified") == simplified
    assert to_script(simplified, "traditional") == traditional


def test_latin_letters_digits_and_punctuation_pass_through():
    text = "Always Always 300块, OK? 5G!"
    assert to_script(text, "simplified") == text
