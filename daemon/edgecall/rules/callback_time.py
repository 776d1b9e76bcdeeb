"""When the caller wants to be called back, read from what they said (issue 13, item 5).

`callback_time(text, language, now)` finds a stated time and resolves it against
`now` (aware, the appliance's local time); the result is in now's time zone, with
the words that said it. Numerals and day/period words are grammar, so they are
code here, not configuration.

Understood (zh / en):

- delays: 十分钟后, 过二十分钟, 半小时后, 一个半小时以后, 两个小时后 / "in 20 minutes",
  "in an hour", "in half an hour", "in an hour and a half", "two hours from now":
  now + the delay. 过一会儿, 等会儿, 待会儿 / "in a bit", "in a while", "a little later":
  now + 15 minutes.
- clock times: 三点, 三点半, 三点一刻, 三点十五(分), 下午3点, 15:30 / "at 3", "after three",
  "around 10:30", "3 pm", "three o'clock", "at ten thirty", "half past 3", "quarter to 4".
  English needs at/after/around/about/by/from, am/pm, o'clock or a colon, so that
  "I have 3 kids" is no time. "after 3" and 三点以后 mean 3 o'clock.
- periods: 早上/上午 09:00, 中午 12:00, 下午 14:00, 傍晚 18:00, 晚上/今晚 19:00 / morning,
  noon, afternoon, evening, tonight. Right next to a clock time a period only says am
  or pm (晚上八点 is 20:00); alone it means the time given here. Greetings (早上好,
  "good morning") are not periods.
- days: 今天, 明天, 后天, 大后天, 下周, 周三/星期三/礼拜三, 下周三 / today, tomorrow, the day
  after tomorrow, next week, Wednesday, next Wednesday. A day without a time means
  10:00; next week is next Monday 10:00; a weekday is the next such day after today;
  下周三 / "next Wednesday" is the Wednesday of next (Monday-first) week.

Rules for what is ambiguous:

- A bare hour 1-12 (no am/pm, no period) is read within calling hours, 07:00-20:59:
  9-12 are 09:00-12:00, 1-6 are 13:00-18:00, and 7 or 8 is whichever of 7/8 am and
  7/8 pm comes first (said at 10:00, "at 8" is 20:00).
- A time already past today, with no day word, is that time tomorrow.
- A period alone whose time has passed while the period has not ("this afternoon"
  said at 15:00) is 30 minutes from now; once the period is over, it is tomorrow's.
- Before 04:00 the caller has not slept yet: 明天 / "tomorrow" is the coming day.
- Of several days, clock times or delays the last one said counts; a delay wins
  over a day or clock time only when it is said after them.

No time (None): "later"/晚点 without a size, "today" alone, any other text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

CALLING_HOURS = range(7, 21)  # how a bare hour 1-12 is read (07:00-20:59)
DAY_HOUR = 10  # a day said without a time
VAGUE_DELAY = timedelta(minutes=15)  # 过一会儿, "in a bit"
LATER_IN_PERIOD = timedelta(minutes=30)
NIGHT_ENDS = 4  # before this hour "tomorrow" is the coming day
# period: (hour it means alone, hour it ends)
PERIODS = {
    "morning": (9, 12),
    "noon": (12, 14),
    "afternoon": (14, 18),
    "dusk": (18, 19),
    "evening": (19, 23),
}
_NEAR = {"zh": 2, "en": 8}  # characters between a period and the clock time it qualifies


@dataclass(frozen=True)
class _Part:
    start: int
    end: int


@dataclass(frozen=True)
class _Clock(_Part):
    hour: int
    minute: int
    fixed: bool  # needs no am/pm reading: 24-hour, or am/pm said


@dataclass(frozen=True)
class _Period(_Part):
    name: str


@dataclass(frozen=True)
class _Day(_Part):
    day: date | None  # None: today


@dataclass(frozen=True)
class _Delay(_Part):
    delta: timedelta


def callback_time(text: str, language: str, now: datetime) -> tuple[datetime, str] | None:
    """The moment the caller asked to be called back, and the words that said it."""
    if language == "zh":
        text = re.sub(r"\s+", "", text)
        parts = _zh_parts(text, now.date(), now.hour < NIGHT_ENDS)
    elif language == "en":
        text = " ".join(text.replace("\u2019", "'").split())
        parts = _en_parts(text, now.date(), now.hour < NIGHT_ENDS)
    else:
        return None
    return _resolve(text, parts, now, _NEAR[language])


def _last(parts: list[_Part], kind: type) -> _Part | None:
    return next((p for p in reversed(parts) if isinstance(p, kind)), None)


def _resolve(
    text: str, parts: list[_Part], now: datetime, near: int
) -> tuple[datetime, str] | None:
    delay, day, clock, period = (_last(parts, k) for k in (_Delay, _Day, _Clock, _Period))
    if clock and period and max(clock.start, period.start) - min(clock.end, period.end) > near:
        period = None  # "busy all morning, call me at 3": the period is not the clock's
    used = [p for p in (day, clock, period) if p]
    if delay and all(delay.end > p.end for p in used):
        return now + delay.delta, text[delay.start : delay.end]
    if not clock and not period and not (day and day.day):
        return None
    phrase = text[min(p.start for p in used) : max(p.end for p in used)]
    today = now.date()

    def at(d: date, hour: int, minute: int = 0) -> datetime:
        midnight = datetime.combine(d, time(), tzinfo=now.tzinfo)
        return midnight + timedelta(hours=hour, minutes=minute)

    if clock:
        minute = clock.minute
        if clock.fixed:
            hours = [clock.hour]
        elif period:
            hours = [_in_period(clock.hour, period.name)]
        else:
            hours = [h for h in (clock.hour % 12, clock.hour % 12 + 12) if h in CALLING_HOURS]
    else:
        minute, hours = 0, [PERIODS[period.name][0] if period else DAY_HOUR]
    if day and day.day and day.day != today:
        return at(day.day, hours[0], minute), phrase
    for hour in hours:
        if at(today, hour, minute) > now:
            return at(today, hour, minute), phrase
    if not clock and period and now < at(today, PERIODS[period.name][1]):
        return now + LATER_IN_PERIOD, phrase
    return at(today + timedelta(days=1), hours[0], minute), phrase


def _in_period(hour: int, period: str) -> int:
    """下午三点 is 15:00, 中午一点 13:00, 中午十一点 11:00, 晚上十二点 midnight (24)."""
    if hour >= 13 or period == "morning":
        return hour
    if period == "noon":
        return hour + 12 if hour < 6 else hour
    if hour == 12:
        return 24 if period == "evening" else 12
    return hour + 12


def _weekday(today: date, weekday: int, next_week: bool) -> date:
    if next_week:
        return today + timedelta(days=7 - today.weekday() + weekday)
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def _clock(m: re.Match, hour: int | None, minute: int | None, fixed: bool) -> _Clock | None:
    if hour is None or minute is None or not (0 <= hour <= 24 and 0 <= minute <= 59):
        return None
    return _Clock(m.start(), m.end(), hour, minute, fixed or hour == 0 or hour >= 13)


# --- Chinese ---------------------------------------------------------------------------

_ZH_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_ZH_N = r"(?:[零〇一二两三四五六七八九十]{1,3}|(?<!\d)\d{1,2})"


def zh_number(s: str) -> int | None:
    """一 1, 两 2, 十 10, 十五 15, 二十 20, 三十五 35, 零五 5, and Arabic digits; else None."""
    if s.isdigit():
        return int(s)
    if len(s) > 1:
        s = s.lstrip("零〇")
    tens, ten, units = s.partition("十")
    if not ten:
        return _ZH_DIGITS.get(s) if len(s) == 1 else None
    t = _ZH_DIGITS.get(tens) if tens else 1
    u = _ZH_DIGITS.get(units) if units else 0
    return None if t is None or u is None else t * 10 + u


_ZH_CLOCK = re.compile(
    rf"(?P<h>{_ZH_N})(?:[点點]钟?(?P<m>半|[一三]刻|过?{_ZH_N}分?)?|[:：](?P<mm>\d{{2}}))"
    r"(?:以后|之后|左右|后)?"
)
_A_BIT = "晚早快慢多少好差这那有再大小高低"  # 晚一点 is "a bit later", not one o'clock
_ZH_DELAY = re.compile(
    rf"(?P<pre>再过|过|等)?(?P<n>{_ZH_N}|半)(?P<ge>个半|个)?(?P<u>分钟|小时|钟头)"
    r"(?P<post>以后|之后|左右|后)?"
)
_ZH_VAGUE = re.compile(r"(?:[过等待]一?|一)会儿?")
_ZH_PERIODS = {
    "早上": "morning",
    "早晨": "morning",
    "上午": "morning",
    "今早": "morning",
    "明早": "morning",
    "中午": "noon",
    "下午": "afternoon",
    "傍晚": "dusk",
    "晚上": "evening",
    "夜里": "evening",
    "今晚": "evening",
    "明晚": "evening",
}
_ZH_PERIOD = re.compile(f"(?:{'|'.join(_ZH_PERIODS)})(?!好)")  # 早上好 is a greeting
_ZH_DAY = re.compile(
    r"(?P<d>今天|明天|大后天|后天|明(?=[早晚])|今(?=[早晚]))"
    r"|(?P<next>下个?|这个?|本)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天])"
    r"|(?P<nextweek>下个?(?:周|星期|礼拜))"
)
_ZH_DAY_OFFSET = {"今": None, "今天": None, "明": 1, "明天": 1, "后天": 2, "大后天": 3}


def _zh_parts(text: str, today: date, night: bool) -> list[_Part]:
    parts: list[_Part] = []
    for m in _ZH_CLOCK.finditer(text):
        if m["h"] == "一" and not m["m"] and m.start() and text[m.start() - 1] in _A_BIT:
            continue
        minute = m["m"] or m["mm"] or "0"
        minute = {"半": "30", "一刻": "15", "三刻": "45"}.get(minute, minute)
        clock = _clock(m, zh_number(m["h"]), zh_number(minute.strip("过分")), False)
        parts += [clock] if clock else []
    for m in _ZH_DELAY.finditer(text):
        n = 0.5 if m["n"] == "半" else zh_number(m["n"])
        if n is not None and (m["pre"] or m["post"]):
            n += 0.5 if m["ge"] == "个半" else 0
            unit = "minutes" if m["u"] == "分钟" else "hours"
            parts.append(_Delay(m.start(), m.end(), timedelta(**{unit: n})))
    parts += [_Delay(m.start(), m.end(), VAGUE_DELAY) for m in _ZH_VAGUE.finditer(text)]
    parts += [_Period(m.start(), m.end(), _ZH_PERIODS[m[0]]) for m in _ZH_PERIOD.finditer(text)]
    base = today - timedelta(days=1) if night else today
    for m in _ZH_DAY.finditer(text):
        if m["d"]:
            offset = _ZH_DAY_OFFSET[m["d"]]
            day = None if offset is None else base + timedelta(days=offset)
        elif m["wd"]:
            weekday = min("一二三四五六日天".index(m["wd"]), 6)  # 星期天 is 星期日
            day = _weekday(today, weekday, (m["next"] or "").startswith("下"))
        else:
            day = _weekday(today, 0, True)
        parts.append(_Day(m.start(), m.end(), day))
    return sorted(parts, key=lambda p: p.end)


# --- English ---------------------------------------------------------------------------

_DIGIT_WORDS = "one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_EN_WORDS = {w: i for i, w in enumerate(f"zero|{_DIGIT_WORDS}|{_TEENS}".split("|"))} | {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "oh": 0,
    "a": 1,
    "an": 1,
}
_TENS = "twenty|thirty|forty|fifty"
_EN_N = rf"(?:\d{{1,2}}|(?:{_TENS})(?:[ -](?:{_DIGIT_WORDS}))?|{_TEENS}|{_DIGIT_WORDS})"
_EN_MIN = rf"(?:\d{{2}}|oh[ -](?:{_DIGIT_WORDS})|(?:{_TENS})(?:[ -](?:{_DIGIT_WORDS}))?|{_TEENS})"
_UNIT_AFTER = r"(?!\s+(?:minutes?|mins?|hours?|hrs?|days?|weeks?)\b)"


def en_number(s: str) -> int:
    """'3', 'three', 'twenty five', 'twenty-five', 'oh five', 'an': as the regexes give them."""
    s = s.lower()
    return int(s) if s.isdigit() else sum(_EN_WORDS[w] for w in re.split(r"[ -]", s))


_EN_CLOCK = re.compile(
    r"(?<![\w'])(?:(?P<pre>at|after|around|about|by|from)\s+(?:(?:about|around)\s+)?)?"
    rf"(?:(?P<q>half|quarter)\s+(?P<rel>past|to)\s+(?P<qh>{_EN_N})"
    rf"|(?P<h>{_EN_N})(?::(?P<mm>\d{{2}})|\s+(?P<mw>{_EN_MIN}))?)"
    r"(?:\s*(?P<ap>[ap])\.?\s?m\b\.?|\s+(?P<oc>o'?clock))?"
    rf"(?![\w']){_UNIT_AFTER}",
    re.I,
)
_EN_DELAY = re.compile(
    r"(?<![\w'])(?:(?P<pre>in|after)\s+(?:(?:about|around|like|maybe)\s+)?)?"
    rf"(?:(?P<half>half an?|an? half)|(?P<n>{_EN_N}|an?|(?:a )?couple(?: of)?))"
    r"(?P<half1> and a half)?\s+(?P<u>minutes?|mins?|hours?|hrs?)(?P<half2> and a half)?"
    r"(?P<post>\s+(?:from now|later))?(?![\w'])",
    re.I,
)
_EN_VAGUE = re.compile(
    r"(?<![\w'])(?:in a (?:little )?(?:bit|while)|after a (?:little )?while"
    r"|a (?:little )?(?:bit )?later)(?![\w'])",
    re.I,
)
_EN_PERIODS = {
    "morning": "morning",
    "noon": "noon",
    "midday": "noon",
    "lunchtime": "noon",
    "lunch time": "noon",
    "afternoon": "afternoon",
    "evening": "evening",
    "tonight": "evening",
    "night": "evening",
}
_EN_PERIOD = re.compile(
    r"(?<![\w'])(?<!good )(?<!last )(?:(?:this|in the|at)\s+)?"
    rf"(?P<p>{'|'.join(_EN_PERIODS)})(?![\w'])",
    re.I,
)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_EN_DAY = re.compile(
    r"(?<![\w'])(?:(?P<d>today|tomorrow|(?:the )?day after tomorrow)(?:'s)?"
    r"|(?P<nextweek>next week)"
    rf"|(?:(?P<next>next|this|on)\s+)?(?P<wd>{'|'.join(_WEEKDAYS)}))(?![\w'])",
    re.I,
)


def _en_parts(text: str, today: date, night: bool) -> list[_Part]:
    parts: list[_Part] = []
    for m in _EN_CLOCK.finditer(text):
        if not (m["pre"] or m["mm"] or m["ap"] or m["oc"] or m["q"]):
            continue  # a bare number is not a time
        if m["q"]:
            hour = en_number(m["qh"])
            minute = {"half": 30, "quarter": 15}[m["q"].lower()]
            if m["rel"].lower() == "to":
                hour, minute = (hour - 1) or 12, 45
        else:
            hour = en_number(m["h"])
            minute = en_number(m["mm"] or m["mw"] or "0")
        if m["ap"]:
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if m["ap"].lower() == "p" else 0)
        clock = _clock(m, hour, minute, bool(m["ap"]))
        parts += [clock] if clock else []
    for m in _EN_DELAY.finditer(text):
        if not (m["pre"] or m["post"]):
            continue
        if m["half"]:
            n = 0.5
        else:
            n = 2 if "couple" in m["n"].lower() else en_number(m["n"])
            n += 0.5 if m["half1"] or m["half2"] else 0
        unit = "minutes" if m["u"].lower().startswith("m") else "hours"
        parts.append(_Delay(m.start(), m.end(), timedelta(**{unit: n})))
    parts += [_Delay(m.start(), m.end(), VAGUE_DELAY) for m in _EN_VAGUE.finditer(text)]
    parts += [
        _Period(m.start(), m.end(), _EN_PERIODS[m["p"].lower()]) for m in _EN_PERIOD.finditer(text)
    ]
    base = today - timedelta(days=1) if night else today
    for m in _EN_DAY.finditer(text):
        d = (m["d"] or "").lower()
        if d == "today":
            day = None
        elif d:
            day = base + timedelta(days=1 if d.startswith("tomorrow") else 2)
        elif m["wd"]:
            next_week = (m["next"] or "").lower() == "next"
            day = _weekday(today, _WEEKDAYS.index(m["wd"].lower()), next_week)
        else:
            day = _weekday(today, 0, True)
        parts.append(_Day(m.start(), m.end(), day))
    return sorted(parts, key=lambda p: p.end)
