"""Chinese transcripts in one script, whatever Whisper chose to write.

Whisper's multilingual models write Mandarin in simplified or traditional
characters from one utterance to the next (4 of the 8 Chinese test clips came
out traditional). The call rules' lexicons and the text emotion classifier are
in one script, so '頭髮' must become '头发' before they see it. OpenCC converts
by phrase, not just by character, which matters towards traditional: '干' is
'乾' in '干燥' but '幹' in '干活', and '发' is '髮' in '头发' but '發' in '发展'.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

Script = Literal["simplified", "traditional"]
_OPENCC_CONFIG: dict[str, str] = {"simplified": "t2s", "traditional": "s2t"}


@cache
def _converter(config: str) -> Any:  # opencc ships no type hints
    import opencc

    return opencc.OpenCC(config)


def to_script(text: str, script: Script) -> str:
    """`text` with every Chinese character in `script`; other characters unchanged."""
    return _converter(_OPENCC_CONFIG[script]).convert(text)
