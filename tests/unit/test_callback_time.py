"""When the caller asked to be called back, against fixed clocks in Asia/Shanghai."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from edgecall.rules.callback_time import callback_time, en_number, zh_number

TZ = ZoneInfo("Asia/Shanghai")
MORNING = datetime(2025, 3, 12, 10, 0, tzinfo=TZ)  # Wednesday
AFTERNOON = datetime(2025, 3, 12, 15, 0, tzinfo=TZ)
LATE = datetime(2025, 3, 12, 22, 30, tzinfo=TZ)
AFTER_MIDNIGHT = datetime(2025, 3, 13, 0, 30, tzinfo=TZ)  # Thursday, caller not asleep yet
SUNDAY = datetime(2025, 3, 16, 7, 0, tzinfo=TZ)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("now", "text", "expected", "phrase"),
    [
        # delays
        (MORNING, "十分钟后", at(12, 10, 10), "十分钟后"),
        (MORNING, "那你过二十分钟再打", at(12, 10, 20), "过二十分钟"),
        (MORNING, "半小时后吧", at(12, 10, 30), "半小时后"),
        (MORNING, "半个小时以后", at(12, 10, 30), "半个小时以后"),
        (MORNING, "一个小时以后再打给我", at(12, 11, 0), "一个小时以后"),
        (MORNING, "一个半小时后", at(12, 11, 30), "一个半小时后"),
        (MORNING, "两个小时后", at(12, 12, 0), "两个小时后"),
        (MORNING, "15分钟后", at(12, 10, 15), "15分钟后"),
        (LATE, "我在开会 过一会儿再打", at(12, 22, 45), "过一会儿"),
        (MORNING, "等会儿吧", at(12, 10, 15), "等会儿"),
        (MORNING, "待会儿再说", at(12, 10, 15), "待会儿"),
        # clock times: a bare hour is read within calling hours
        (MORNING, "下午三点以后", at(12, 15), "下午三点以后"),
        (MORNING, "三点以后打吧", at(12, 15), "三点以后"),
        (MORNING, "三点半", at(12, 15, 30), "三点半"),
        (MORNING, "三点一刻", at(12, 15, 15), "三点一刻"),
        (MORNING, "三点十五分", at(12, 15, 15), "三点十五分"),
        (MORNING, "十一点", at(12, 11), "十一点"),
        (MORNING, "十二点", at(12, 12), "十二点"),
        (MORNING, "八点", at(12, 20), "八点"),  # 8 am has passed, 8 pm has not
        (MORNING, "九点", at(13, 9), "九点"),  # 9 pm is past calling hours
        (MORNING, "下午3点", at(12, 15), "下午3点"),
        (MORNING, "下午 3 点", at(12, 15), "下午3点"),  # ASR spacing
        (MORNING, "15:30", at(12, 15, 30), "15:30"),
        (MORNING, "十五点", at(12, 15), "十五点"),
        (MORNING, "晚上八点", at(12, 20), "晚上八点"),
        (MORNING, "中午一点", at(12, 13), "中午一点"),
        (MORNING, "今晚八点半", at(12, 20, 30), "今晚八点半"),
        (AFTERNOON, "三点半", at(12, 15, 30), "三点半"),
        (AFTERNOON, "两点", at(13, 14), "两点"),  # past today, no day word: tomorrow
        (LATE, "晚上八点", at(13, 20), "晚上八点"),
        (LATE, "八点", at(13, 8), "八点"),
        (MORNING, "不是三点是四点", at(12, 16), "四点"),  # the last time said
        # periods and days
        (MORNING, "明天上午", at(13, 9), "明天上午"),
        (MORNING, "明天下午两点", at(13, 14), "明天下午两点"),
        (MORNING, "明天下午两点半吧", at(13, 14, 30), "明天下午两点半"),
        (MORNING, "明早", at(13, 9), "明早"),
        (MORNING, "明晚八点", at(13, 20), "明晚八点"),
        (MORNING, "今晚", at(12, 19), "今晚"),
        (MORNING, "下午", at(12, 14), "下午"),
        (AFTERNOON, "下午", at(12, 15, 30), "下午"),  # later this afternoon
        (LATE, "下午", at(13, 14), "下午"),
        (MORNING, "明天吧", at(13, 10), "明天"),
        (MORNING, "后天上午", at(14, 9), "后天上午"),
        (MORNING, "下周", at(17, 10), "下周"),  # next Monday
        (MORNING, "下周三下午", at(19, 14), "下周三下午"),
        (MORNING, "周五", at(14, 10), "周五"),
        (MORNING, "星期天上午十点", at(16, 10), "星期天上午十点"),
        (MORNING, "今天不行 明天再打", at(13, 10), "明天"),
        (AFTER_MIDNIGHT, "明天上午", at(13, 9), "明天上午"),  # the coming morning
        (AFTER_MIDNIGHT, "三点", at(13, 15), "三点"),
        (SUNDAY, "下周", at(17, 10), "下周"),
        (SUNDAY, "周日", at(23, 10), "周日"),  # today is Sunday: the next one
    ],
)
def test_chinese(now, text, expected, phrase):
    assert callback_time(text, "zh", now) == (expected, phrase)


@pytest.mark.parametrize(
    ("now", "text", "expected", "phrase"),
    [
        # delays
        (MORNING, "call me in 20 minutes", at(12, 10, 20), "in 20 minutes"),
        (MORNING, "in twenty minutes", at(12, 10, 20), "in twenty minutes"),
        (MORNING, "in twenty-five minutes", at(12, 10, 25), "in twenty-five minutes"),
        (MORNING, "try again in an hour", at(12, 11), "in an hour"),
        (MORNING, "in half an hour", at(12, 10, 30), "in half an hour"),
        (MORNING, "in a half hour", at(12, 10, 30), "in a half hour"),
        (MORNING, "in two hours", at(12, 12), "in two hours"),
        (MORNING, "in an hour and a half", at(12, 11, 30), "in an hour and a half"),
        (MORNING, "a couple of hours from now", at(12, 12), "a couple of hours from now"),
        (MORNING, "call back after thirty minutes", at(12, 10, 30), "after thirty minutes"),
        (LATE, "in a bit", at(12, 22, 45), "in a bit"),
        (MORNING, "a little later", at(12, 10, 15), "a little later"),
        # clock times
        (MORNING, "call me after 3", at(12, 15), "after 3"),
        (MORNING, "call me after three", at(12, 15), "after three"),
        (MORNING, "at 10:30", at(12, 10, 30), "at 10:30"),
        (MORNING, "at ten thirty", at(12, 10, 30), "at ten thirty"),
        (MORNING, "3 pm", at(12, 15), "3 pm"),
        (MORNING, "around 4 p.m. maybe", at(12, 16), "around 4 p.m."),
        (MORNING, "five o'clock", at(12, 17), "five o'clock"),
        (MORNING, "at 5 30", at(12, 17, 30), "at 5 30"),
        (MORNING, "half past three", at(12, 15, 30), "half past three"),
        (MORNING, "quarter to four", at(12, 15, 45), "quarter to four"),
        (MORNING, "at 8", at(12, 20), "at 8"),
        (MORNING, "at 9", at(13, 9), "at 9"),
        (MORNING, "at 9 am", at(13, 9), "at 9 am"),
        (MORNING, "at 11", at(12, 11), "at 11"),
        (MORNING, "at 8 in the evening", at(12, 20), "at 8 in the evening"),
        (MORNING, "at 3 in the morning", at(13, 3), "at 3 in the morning"),
        (MORNING, "at noon", at(12, 12), "at noon"),
        (MORNING, "at 20:15", at(12, 20, 15), "at 20:15"),
        (AFTERNOON, "call me after 3", at(13, 15), "after 3"),  # 3 pm is now: tomorrow
        (AFTERNOON, "at 7", at(12, 19), "at 7"),
        (LATE, "call me after 3", at(13, 15), "after 3"),
        (LATE, "at 7", at(13, 7), "at 7"),
        (SUNDAY, "at 8", at(16, 8), "at 8"),
        # a period beside a clock time says am/pm; elsewhere in the sentence it does not
        (
            MORNING,
            "around six thirty this evening",
            at(12, 18, 30),
            "around six thirty this evening",
        ),
        (MORNING, "I'm in meetings all morning call me at 3", at(12, 15), "at 3"),
        # periods and days
        (MORNING, "tomorrow morning", at(13, 9), "tomorrow morning"),
        (MORNING, "tomorrow afternoon", at(13, 14), "tomorrow afternoon"),
        (MORNING, "this evening", at(12, 19), "this evening"),
        (MORNING, "tonight please", at(12, 19), "tonight"),
        (LATE, "tonight", at(12, 23), "tonight"),  # later tonight
        (AFTERNOON, "this afternoon", at(12, 15, 30), "this afternoon"),
        (LATE, "this afternoon", at(13, 14), "this afternoon"),
        (MORNING, "next week", at(17, 10), "next week"),
        (MORNING, "call me tomorrow at 3", at(13, 15), "tomorrow at 3"),
        (MORNING, "at 11 tomorrow", at(13, 11), "at 11 tomorrow"),
        (MORNING, "tomorrow at 7", at(13, 7), "tomorrow at 7"),
        (MORNING, "the day after tomorrow", at(14, 10), "the day after tomorrow"),
        (MORNING, "friday afternoon", at(14, 14), "friday afternoon"),
        (MORNING, "next Friday at 2", at(21, 14), "next Friday at 2"),
        (MORNING, "on Monday", at(17, 10), "on Monday"),
        (MORNING, "not today tomorrow", at(13, 10), "tomorrow"),
        (MORNING, "tomorrow no wait in an hour", at(12, 11), "in an hour"),
        (AFTER_MIDNIGHT, "tomorrow morning", at(13, 9), "tomorrow morning"),
        (AFTER_MIDNIGHT, "tonight", at(13, 19), "tonight"),
    ],
)
def test_english(now, text, expected, phrase):
    assert callback_time(text, "en", now) == (expected, phrase)


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("zh", "我现在在开会"),
        ("zh", "晚一点打"),  # 一点 here is "a bit", not one o'clock
        ("zh", "你说快一点"),
        ("zh", "早上好"),  # a greeting
        ("zh", "下午好请问有什么事"),
        ("zh", "我有三个孩子"),
        ("zh", "今天"),
        ("zh", "我只有十分钟"),  # a duration, not a delay
        ("zh", "几点"),
        ("en", "call me later"),
        ("en", "I have 3 kids"),
        ("en", "good morning who is this"),
        ("en", "good evening"),
        ("en", "today"),
        ("en", "it costs 20 a month"),
        ("en", "I only have 5 minutes"),
        ("en", "after 2 weeks"),
        ("en", "by the way"),
        ("en", ""),
        ("fr", "demain matin"),
    ],
)
def test_no_time_stated(language, text):
    assert callback_time(text, language, MORNING) is None


def test_the_result_is_aware_in_the_time_zone_of_now():
    when, _ = callback_time("明天下午两点", "zh", MORNING)
    assert when.tzinfo is TZ and when.utcoffset().total_seconds() == 8 * 3600
    utc = MORNING.astimezone(ZoneInfo("UTC"))  # 02:00 UTC: the hours are read in UTC then
    when, _ = callback_time("at 3 pm", "en", utc)
    assert when == datetime(2025, 3, 12, 15, 0, tzinfo=ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("text", "value"),
    [("一", 1), ("两", 2), ("十", 10), ("十五", 15), ("二十", 20), ("三十五", 35), ("零五", 5)]
    + [("〇", 0), ("12", 12), ("一二", None), ("十十", None), ("几", None)],
)
def test_zh_number(text, value):
    assert zh_number(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("three", 3), ("twelve", 12), ("twenty", 20), ("twenty five", 25)]
    + [("Thirty-Five", 35), ("oh five", 5), ("an", 1)],
)
def test_en_number(text, value):
    assert en_number(text) == value
