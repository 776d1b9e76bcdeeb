"""English neural voice: a Piper VITS model run with onnxruntime, phonemes from libespeak-ng.

No piper-tts (GPL) and no sherpa-onnx TTS: text is normalised the way a call-centre agent
reads prices, data, times, dates and phone numbers (`normalize_english`), espeak-ng turns each
clause into IPA (`espeak_ng`), and the IPA goes through the voice's phoneme_id_map with
Piper's framing: "^" and "$" around each sentence, "_" after every symbol, clause
punctuation kept. Each sentence is one ONNX run; sentences are joined by 0.2 s of silence.

The model's two RandomNormalLike nodes have no seed (onnxruntime seeds them once per
session), so on load they are rewired, in memory only, to read graph inputs; those get
Gaussian noise from a generator seeded by the sentence's phoneme ids, and one text always
gives the same audio.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from edgecall.inference.manifest import ModelFileError, load_manifest, verified_path
from edgecall.speech.espeak_ng import espeak_ng
from edgecall.speech.voice import Quality, UnpronounceableText, VoiceError

SENTENCE_SILENCE_S = 0.2
# Noise fed to the graph per random node; larger tensors reuse it cyclically (VITS medium
# draws [1, 2, phonemes] for durations and [1, 192, frames] for the latent).
NOISE_CHANNELS, NOISE_FRAMES = 192, 2048
_SENTENCE_END = ".?!"

# --- English text normalisation ------------------------------------------------------

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
_MONTHS += ["September", "October", "November", "December"]
_MONTH_RE = (
    r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)(?:\.(?=\s*\d))?"
)
_UNITS = {
    "TB": "terabyte",
    "GB": "gigabyte",
    "MB": "megabyte",
    "KB": "kilobyte",
    "Gbps": "gigabits per second",
    "Mbps": "megabits per second",
    "Kbps": "kilobits per second",
}
_MONEY = {  # symbol: (one, many, one cent, many cents); None: read decimals as "point"
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yuan", "yuan", None, None),
}
_PER_TIME = {"month": "month", "mo": "month", "year": "year", "yr": "year"}
_PER_TIME |= {"day": "day", "week": "week", "wk": "week", "hour": "hour", "hr": "hour"}
_DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_DROP = {"So", "Sk", "Co", "Cn", "Cs", "Cf", "Cc"}  # emoji, trademark signs, controls
_LATIN = frozenset(chr(c) for c in range(0x250) if chr(c).isalpha())  # up to Latin Ext-B
_NOISE_CHARS = re.compile(r"[*_~^|\\`<>{}\[\]=]")


def _month(name: str) -> str:
    return next(m for m in _MONTHS if m.lower().startswith(name.lower()[:3]))


def _ordinal(day: str) -> str:
    n = int(day)
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"  # espeak-ng reads "21st" as "twenty first"


def _year(year: str) -> str:
    """2024 -> "20 24" (twenty twenty-four), 1905 -> "19 oh 5"; 2000-2009 stay as they are."""
    y = int(year)
    if not 1100 <= y <= 2099 or 2000 <= y <= 2009 or y % 100 == 0:
        return year
    return f"{y // 100} {y % 100}" if y % 100 >= 10 else f"{y // 100} oh {y % 100}"


def _date(month: str, day: str, year: str | None) -> str:
    if not 1 <= int(day) <= 31:
        raise ValueError(day)
    spoken = f"{_month(month)} {_ordinal(day)}"
    return f"{spoken}, {_year(year)}" if year else spoken


def _numeric_date(m: re.Match[str], order: str) -> str:
    parts = dict(zip(order, m.groups(), strict=True))
    month = int(parts["m"])
    if not 1 <= month <= 12:
        return m.group()
    try:
        return _date(_MONTHS[month - 1], parts["d"], parts["y"])
    except ValueError:
        return m.group()


def _time(m: re.Match[str]) -> str:
    hour, minute, suffix = int(m["h"]), m["min"], (m["ap"] or "").lower()
    if hour > 23 or (minute is not None and int(minute) > 59):
        return m.group()
    if not suffix and hour > 12:  # 15:30 -> three thirty pm, as an agent says it
        hour, suffix = hour - 12, "pm"
    elif not suffix and hour == 0 and minute is not None:
        hour, suffix = 12, "am"
    words = [str(hour)]
    if minute is None or int(minute) == 0:
        if not suffix:
            words.append("o'clock")
    elif int(minute) < 10:
        words += ["oh", str(int(minute))]
    else:
        words.append(minute)
    return " ".join(words + ([suffix] if suffix else []))


def _money(symbol: str, whole: str, decimals: str | None) -> str:
    one, many, cent, cents = _MONEY["¥" if symbol in "¥￥" else symbol]
    whole = whole.replace(",", "")
    if decimals and int(decimals) and cent is None:
        return f"{whole}.{decimals.rstrip('0')} {many}"
    spoken = f"{whole} {one if whole == '1' else many}"
    if decimals and int(decimals):
        value = int(decimals.ljust(2, "0"))
        change = f"{value} {cent if value == 1 else cents}"
        spoken = change if int(whole) == 0 else f"{spoken} and {change}"
    return spoken


def _data_unit(m: re.Match[str]) -> str:
    number, unit = m.group(1), _UNITS[m.group(2)]
    if unit.endswith("second"):
        return f"{number} {unit}"
    return f"{number} {unit}" if number == "1" else f"{number} {unit}s"


def _read_digits(groups: list[str]) -> str:
    """Digit groups read one digit at a time, a short pause (comma) between groups."""
    if len(groups) == 1 and len(groups[0]) >= 6:
        digits = groups[0]
        cut = {11: (3, 7), 10: (3, 6), 7: (3,), 6: (3,)}.get(len(digits))
        cut = cut or tuple(range(len(digits) % 4 or 4, len(digits), 4))
        bounds = (0, *cut, len(digits))
        groups = [digits[i:j] for i, j in zip(bounds, bounds[1:], strict=False)]
    return ", ".join(" ".join(_DIGIT_WORDS[int(d)] for d in g) for g in groups)


def _digits(m: re.Match[str]) -> str:
    """Phone numbers (7+ digits, a leading 0 or +) and codes, one digit at a time."""
    raw = m.group()
    groups = re.findall(r"\d+", raw)
    digits = "".join(groups)
    leading_zero = digits.startswith("0") and len(digits) >= 3
    if len(digits) < 7 and not leading_zero and not raw.startswith("+"):
        return raw
    if "." in raw and len(groups) < 3:
        return raw  # a decimal number, not a dotted phone number
    return ("plus " if raw.startswith("+") else "") + _read_digits(groups)


_DIGIT_RUN = r"\+?(?:\(\d+\)[\s.-]?)?\d+(?:[\s.-]\d+)*"
_RULES: list[tuple[re.Pattern[str], Any]] = [
    # a.m./p.m.: drop the dots (one stays if it ends the sentence), then "3pm" -> "3 pm"
    (re.compile(r"\b([aApP])\.\s?[mM]\.(?=\s+[A-Z]|\s*$)"), lambda m: m.group(1).lower() + "m."),
    (re.compile(r"\b([ap])\.\s?m\.?(?!\w)", re.I), lambda m: m.group(1).lower() + "m"),
    (re.compile(r"(\d)\s*([ap])m\b", re.I), lambda m: f"{m.group(1)} {m.group(2).lower()}m"),
    # dates, before anything reads their digits: 2024-05-01, 2024/5/1, 5/1/2024, May 1(st) 2024
    (re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b"), lambda m: _numeric_date(m, "ymd")),
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b"), lambda m: _numeric_date(m, "mdy")),
    (
        re.compile(rf"\b{_MONTH_RE}\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"),
        lambda m: _date(*m.groups()) if 1 <= int(m.group(2)) <= 31 else m.group(),
    ),
    (
        re.compile(
            rf"\b(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_RE}(?:,?\s+(\d{{4}})\b)?"
        ),
        lambda m: (
            f"the {_ordinal(m.group(1))} of {_month(m.group(2))}"
            + (f", {_year(m.group(3))}" if m.group(3) else "")
            if 1 <= int(m.group(1)) <= 31
            else m.group()
        ),
    ),
    (
        re.compile(r"\b(in|since|until|by|from|year)\s+((?:1[1-9]|20)\d\d)\b(?![.,:]\d)"),
        lambda m: f"{m.group(1)} {_year(m.group(2))}",
    ),
    # clock times: 15:30, 3:05 pm, 9:00 (hours 0-23, minutes 00-59); espeak-ng reads "3 pm"
    (re.compile(r"\b(?P<h>\d{1,2}):(?P<min>\d{2})\b(?:\s*(?P<ap>[ap]m)\b)?", re.I), _time),
    # money: $59.99, ¥59, 59.99 dollars, RMB 59, 59 RMB
    (
        re.compile(r"([$€£¥￥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\b"),
        lambda m: _money(*m.groups()),
    ),
    (re.compile(r"\b(?:RMB|CNY)\s?(\d[\d,]*(?:\.\d+)?)"), r"\1 yuan"),
    (re.compile(r"(\d)\s?(?:RMB|CNY)\b"), r"\1 yuan"),
    (
        re.compile(r"\b(\d+)\.(\d{2})\s+(dollars|euros)\b"),
        lambda m: _money("$" if m.group(3) == "dollars" else "€", m.group(1), m.group(2)),
    ),
    # "/month" -> "a month", "/GB" -> "per GB", 24/7
    (re.compile(r"\b24\s?/\s?7\b"), "24 7"),
    (
        re.compile(r"\s?/\s?(month|mo|year|yr|day|week|wk|hour|hr)\b", re.I),
        lambda m: f" a {_PER_TIME[m.group(1).lower()]}",
    ),
    (re.compile(r"\band/or\b"), "and or"),
    (
        re.compile(
            r"(?:(?<=\d)|(?<=yuan)|(?<=cent)|(?<=cents)|(?<=dollar)|(?<=dollars))\s?/\s?"
            r"(?=[A-Z]B\b|[a-z])"
        ),
        " per ",
    ),
    (re.compile(r"(?<=[A-Za-z])\s?/\s?(?=\w)|(?<=\w)\s?/\s?(?=[A-Za-z])"), " or "),
    # data: 100 GB -> 100 gigabytes, per GB -> per gigabyte, 50 Mbps
    (re.compile(r"(\d(?:[\d,.]*\d)?)\s?(TB|GB|MB|KB|Gbps|Mbps|Kbps)\b"), _data_unit),
    (re.compile(r"\b(per|a|each|every)\s+(TB|GB|MB|KB)\b"), lambda m: f"{m[1]} {_UNITS[m[2]]}"),
    # numbers: "#5" / "No. 5" -> number 5
    (re.compile(r"#\s?(?=\d)"), "number "),
    (re.compile(r"\bNo\.\s?(?=\d)"), "number "),
    # codes after these words, and phone-like strings, digit by digit
    (
        re.compile(
            r"\b(dial|hotline|extension|ext\.?|code|PIN|password|digits"
            r"|(?:ending|ends) (?:in|with))(\s+is|\s+are|:)?\s+(\d{2,6})\b",
            re.I,
        ),
        lambda m: f"{m[1]}{m[2] or ''} {_read_digits([m[3]])}",
    ),
    (
        re.compile(r"\b(call|calling)\s+(\d{5,6})\b", re.I),
        lambda m: f"{m[1]} {_read_digits([m[2]])}",
    ),
    (re.compile(rf"(?<![\w.,:/-]){_DIGIT_RUN}(?![\w%]|[.,:]\d)"), _digits),
    # ranges: 3-5 pm, 1-2 days, 9 am-6 pm
    (re.compile(r"(\d|\b[ap]m)\s?[-\u2013\u2014]\s?(?=\d)"), r"\1 to "),
    # The voice slurs "anytime" from espeak-ng's stress: "cancel anytime" was heard as
    # "cancel in a time" by both our ASR models; "any time" is heard right.
    (re.compile(r"\b(any)(time)\b", re.I), r"\1 \2"),
]


def normalize_english(text: str) -> str:
    """`text` as an agent would say it, for espeak-ng. Only what espeak-ng reads wrongly is
    rewritten ("$59" it says "dollar fifty nine", phone numbers as billions, "GB" as "G B");
    plain numbers, percentages, "5G" and ordinals it reads well and are left alone."""
    text = "".join(" " if unicodedata.category(c) in _DROP else c for c in text)
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    text = _NOISE_CHARS.sub(" ", text)
    return " ".join(text.split())


def speakable(text: str) -> str:
    """The normalised text, or UnpronounceableText if no letter or digit is left."""
    normalized = normalize_english(text)
    if not any(c.isalnum() for c in normalized):
        raise UnpronounceableText(f"nothing to say in {text!r}")
    foreign = next((c for c in normalized if c.isalpha() and c not in _LATIN), None)
    if foreign is not None:  # espeak-ng would read Chinese as "Chinese letter" names
        raise UnpronounceableText(f"{foreign!r} in {text!r} is not English script")
    return normalized


# --- phonemes to ids ---------------------------------------------------------------


def sentences_to_ids(
    clauses: list[tuple[str, str]], id_map: dict[str, list[int]]
) -> list[list[int]]:
    """Piper's framing, per sentence: ^ _ (id _)* $, clause punctuation kept (with a space
    after , : ;). Symbols the voice does not know are dropped, as Piper does."""
    pad, bos, eos = id_map["_"], id_map["^"], id_map["$"]
    sentences: list[list[int]] = []
    current: list[str] = []
    for phonemes, terminator in clauses:
        current.append(re.sub(r"\([a-z-]+\)", "", phonemes))  # (en)-style language flags
        if terminator:
            current.append(terminator if terminator in _SENTENCE_END else terminator + " ")
        if terminator in _SENTENCE_END and terminator:
            sentences.append(list("".join(current)))
            current = []
        elif current and not current[-1].endswith(" "):
            current.append(" ")
    if current:
        sentences.append(list("".join(current).rstrip()))
    out = []
    for symbols in sentences:
        ids = [*bos, *pad]
        for symbol in symbols:
            if symbol in id_map:
                ids += [*id_map[symbol], *pad]
        if any(s not in " .,?!:;" and s in id_map for s in symbols):
            out.append([*ids, *eos])
    return out


# --- the voice ---------------------------------------------------------------------


def _seedable(model_bytes: bytes) -> tuple[bytes, list[str]]:
    """The model with each RandomNormalLike(x) replaced by a graph input's noise, taken
    cyclically along both axes to x's [1, channels, length]: (model bytes, input names)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    nodes, inputs = [], []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            nodes.append(node)
            continue
        name, p = f"noise_{len(inputs)}", f"/seeded_noise_{len(inputs)}/"
        inputs.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None]))
        for const, value in (("zero", 0), ("one", 1), ("two", 2)):
            graph.initializer.append(numpy_helper.from_array(np.array(value), p + const))
        nodes += [
            helper.make_node("Shape", [node.input[0]], [p + "want"]),
            helper.make_node("Shape", [name], [p + "have"]),
            helper.make_node("Identity", [name], [p + "axis0"]),
        ]
        for axis in (1, 2):
            a, idx = f"{p}axis{axis}", p + ("one" if axis == 1 else "two")
            nodes += [
                helper.make_node("Gather", [p + "want", idx], [a + "_want"]),
                helper.make_node("Gather", [p + "have", idx], [a + "_have"]),
                helper.make_node("Range", [p + "zero", a + "_want", p + "one"], [a + "_range"]),
                helper.make_node("Mod", [a + "_range", a + "_have"], [a + "_index"]),
                helper.make_node(
                    "Gather",
                    [f"{p}axis{axis - 1}", a + "_index"],
                    [a if axis == 1 else node.output[0]],
                    axis=axis,
                ),
            ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString(), inputs


class PiperVoice:
    """A Piper voice directory: voice.onnx, voice.json and manifest.json (see package.py)."""

    quality: Quality

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        try:
            manifest = load_manifest(model_dir)
            onnx_path = verified_path(model_dir, "voice.onnx")
            config_path = verified_path(model_dir, "voice.json")
        except ModelFileError as exc:
            raise VoiceError(str(exc)) from None
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            self._id_map: dict[str, list[int]] = config["phoneme_id_map"]
            self._espeak_voice: str = config["espeak"]["voice"]
            inference = config["inference"]
            self._scales = np.array(
                [inference["noise_scale"], inference["length_scale"], inference["noise_w"]],
                dtype=np.float32,
            )
            self.sample_rate: int = int(config["audio"]["sample_rate"])
        except (ValueError, KeyError, TypeError) as exc:
            raise VoiceError(f"{config_path}: not a Piper voice config: {exc!r}") from None
        if self.sample_rate != manifest.get("sample_rate", self.sample_rate):
            raise VoiceError(f"{config_path}: sample rate differs from the manifest's")
        self.name: str = manifest.get("name", model_dir.name)
        self.language: str = manifest.get("language", "en")
        self.quality = manifest.get("quality", "high")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            model_bytes, self._noise_inputs = _seedable(onnx_path.read_bytes())
            self._session = ort.InferenceSession(
                model_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # protobuf DecodeError, onnxruntime's own errors
            raise VoiceError(f"{onnx_path}: not a loadable ONNX model: {exc}") from None
        names = {i.name for i in self._session.get_inputs()}
        if not {"input", "input_lengths", "scales"} <= names:
            raise VoiceError(f"{onnx_path}: inputs {sorted(names)} are not a Piper voice's")
        self._espeak = espeak_ng()

    def phoneme_ids(self, text: str) -> list[list[int]]:
        """Model input ids, one list per sentence; UnpronounceableText if there are none."""
        clauses = self._espeak.phonemize(speakable(text), self._espeak_voice)
        sentences = sentences_to_ids(clauses, self._id_map)
        if not sentences:
            raise UnpronounceableText(f"nothing to say in {text!r}")
        return sentences

    def _run(self, ids: list[int]) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(np.array(ids).tobytes()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        feeds: dict[str, np.ndarray] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": self._scales,
        }
        for name in self._noise_inputs:
            feeds[name] = rng.standard_normal((1, NOISE_CHANNELS, NOISE_FRAMES), dtype=np.float32)
        audio = self._session.run(None, feeds)[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def synthesize(self, text: str) -> np.ndarray:
        """float32 samples at 22050 Hz; raises UnpronounceableText."""
        gap = np.zeros(int(SENTENCE_SILENCE_S * self.sample_rate), dtype=np.float32)
        parts: list[np.ndarray] = []
        for ids in self.phoneme_ids(text):
            parts += [gap, self._run(ids)] if parts else [self._run(ids)]
        return np.clip(np.concatenate(parts), -1.0, 1.0)
