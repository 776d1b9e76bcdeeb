"""What a caller's short answer means: yes/no and requests, read with the shipped phrases."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from edgecall.config.language import AnswerPhrases
from edgecall.config.loader import ConfigError, load_model
from edgecall.config.root import EdgecallConfig
from edgecall.rules.answers import AnswerReader, Understood

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 3, 12, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Wednesday morning


@pytest.fixture(scope="module")
def reader(shipped_config) -> AnswerReader:
    return AnswerReader({lang: pack.answers for lang, pack in shipped_config.languages.items()})


@pytest.mark.parametrize(
    ("text", "yes_no", "phrase"),
    [
        ("是的", "yes", "是的"),
        ("嗯嗯好的", "yes", "好的"),
        ("对对对", "yes", "对"),
        ("可以啊", "yes", "可以"),
        ("行", "yes", "行"),
        ("没问题", "yes", "没问题"),
        ("没有问题", "yes", "没有问题"),  # 没有 alone is a no
        ("需要的", "yes", "需要"),
        ("办吧", "yes", "办吧"),
        ("OK", "yes", "ok"),
        ("我很感兴趣", "yes", "感兴趣"),
        # negation wins over the yes word inside it
        ("不好", "no", "不好"),
        ("不要了", "no", "不要"),
        ("不可以", "no", "不可以"),
        ("不需要谢谢", "no", "不需要"),
        ("不行不行", "no", "不行"),
        ("不是不是", "no", "不是"),
        ("不感兴趣", "no", "不感兴趣"),
        ("没有兴趣", "no", "没有兴趣"),
        ("算了吧", "no", "算了"),
        ("还是算了吧", "no", "算了"),
        ("不用了 谢谢", "no", "不用"),
        ("嗯 不 需 要", "no", "不需要"),  # ASR spaces between characters
        # the last decisive phrase wins
        ("好的 哦不对 不用了", "no", "不用"),
        ("你好，这是什么套餐？", None, None),  # 是 inside a sentence is a verb
        ("什么？怎么这么贵，你们就是骗子", None, None),
        ("是，我有兴趣", "yes", "是"),
        ("要，给我办一个", "yes", "要"),
        ("不要 嗯 还是要吧", "yes", "还是要"),
        ("当然不", "no", "不"),
        # questions, apologies and doubt are not answers
        ("好不好", None, None),
        ("行不行啊", None, None),
        ("要不要钱啊", None, None),
        ("是不是真的", None, None),
        ("我不知道", None, None),
        ("我要考虑一下", None, None),
        ("好的 不过我不确定", None, None),
        ("不好意思", None, None),
        ("你好", None, None),
        ("我现在在开车", None, None),
    ],
)
def test_chinese_yes_no(reader, text, yes_no, phrase):
    got = reader.read(text, "zh", NOW)
    assert (got.yes_no, got.phrase) == (yes_no, phrase)
    assert got.request is None


@pytest.mark.parametrize(
    ("text", "yes_no", "phrase"),
    [
        ("yes", "yes", "yes"),
        ("Yes.", "yes", "yes"),
        ("yeah sure", "yes", "sure"),
        ("yep", "yes", "yep"),
        ("OK", "yes", "ok"),
        ("okay go ahead", "yes", "go ahead"),
        ("of course", "yes", "of course"),
        ("please do", "yes", "please do"),
        ("that sounds good", "yes", "sounds good"),
        ("I'd like that", "yes", "i'd like that"),
        ("I\u2019d like that", "yes", "i'd like that"),  # typographic apostrophe
        ("absolutely", "yes", "absolutely"),
        ("that's right", "yes", "that's right"),
        ("correct", "yes", "correct"),
        ("no problem", "yes", "no problem"),  # contains "no"
        ("not a problem at all", "yes", "not a problem"),
        ("no", "no", "no"),
        ("No!", "no", "no"),
        ("nope", "no", "nope"),
        ("not really", "no", "not really"),
        ("no thanks", "no", "no thanks"),
        ("i'm not interested", "no", "not interested"),
        ("I don't want it", "no", "i don't want"),
        ("please don't", "no", "don't"),
        ("never mind", "no", "never mind"),
        ("not right now", "no", "not right now"),
        ("absolutely not", "no", "absolutely not"),
        ("yes no actually no", "no", "no"),
        ("no wait yes", "yes", "yes"),
        ("sure well i'm not sure", None, None),
        # words that only look like yes or no
        ("I know", None, None),
        ("nothing", None, None),
        ("yesterday", None, None),
        ("notes", None, None),
        ("I'm not sure", None, None),
        ("I don't know", None, None),
        ("maybe", None, None),
        ("I'm driving right now", None, None),
        ("good morning", None, None),
        ("", None, None),
    ],
)
def test_english_yes_no(reader, text, yes_no, phrase):
    got = reader.read(text, "en", NOW)
    assert (got.yes_no, got.phrase) == (yes_no, phrase)
    assert got.request is None


@pytest.mark.parametrize(
    ("language", "text", "wanted", "phrase"),
    [
        ("zh", "别再打了", "do_not_call", "别再打了"),
        ("zh", "烦死了以后别打了", "do_not_call", "以后别打"),
        ("zh", "不要再给我打电话了", "do_not_call", "不要再给我打电话"),
        ("zh", "你把我的号码删了吧", "do_not_call", "把我的号码删了"),
        ("zh", "再打我就拉黑你", "do_not_call", "拉黑"),
        ("zh", "我要转人工", "human", "转人工"),
        ("zh", "人工客服在吗", "human", "人工客服"),
        ("zh", "给我找人工", "human", "找人工"),
        ("zh", "我想找真人说话", "human", "找真人"),
        ("zh", "喂喂我没听清", "repeat", "没听清"),
        ("zh", "不好意思你说什么", "repeat", "你说什么"),
        ("zh", "麻烦再说一遍", "repeat", "再说一遍"),
        ("zh", "你重复一下", "repeat", "重复一下"),
        ("zh", "你是谁啊", "who", "你是谁"),
        ("zh", "你们是哪里的", "who", "你们是哪里"),
        ("zh", "这是哪里打来的电话", "who", "哪里打来的"),
        ("zh", "你好你是哪个公司的", "who", "你是哪个公司"),
        ("zh", "好的再见", "goodbye", "再见"),
        ("zh", "拜拜", "goodbye", "拜拜"),
        ("zh", "我挂了啊", "goodbye", "挂了"),
        ("zh", "那先这样吧", "goodbye", "先这样"),
        ("en", "stop calling me", "do_not_call", "stop calling me"),
        ("en", "look I'm busy just stop calling me okay", "do_not_call", "stop calling me"),
        ("en", "Don\u2019t call me again", "do_not_call", "don't call me again"),
        ("en", "please take me off your list", "do_not_call", "take me off your list"),
        ("en", "remove my number", "do_not_call", "remove my number"),
        ("en", "I'm on the do not call register", "do_not_call", "do not call"),
        ("en", "can I talk to a real person", "human", "talk to a real person"),
        ("en", "I want to speak to a human", "human", "speak to a human"),
        ("en", "operator", "human", "operator"),
        ("en", "sorry what", "repeat", "sorry what"),
        ("en", "what did you say", "repeat", "what did you say"),
        ("en", "could you say that again", "repeat", "say that again"),
        ("en", "pardon", "repeat", "pardon"),
        ("en", "come again", "repeat", "come again"),
        ("en", "who is this", "who", "who is this"),
        ("en", "who's calling please", "who", "who's calling"),
        ("en", "where are you calling from", "who", "where are you calling from"),
        ("en", "okay bye", "goodbye", "bye"),
        ("en", "goodbye", "goodbye", "goodbye"),
        ("en", "sorry I have to go", "goodbye", "i have to go"),
    ],
)
def test_requests(reader, language, text, wanted, phrase):
    got = reader.read(text, language, NOW)
    assert (got.request, got.phrase) == (wanted, phrase)


@pytest.mark.parametrize(
    ("language", "text", "wanted"),
    [
        # the strongest request wins, wherever it is said
        ("zh", "你是谁啊别再打了我要投诉转人工", "do_not_call"),
        ("zh", "再见 以后别打了", "do_not_call"),
        ("zh", "你说什么 转人工", "human"),
        ("zh", "你是哪个公司 再说一遍", "repeat"),
        ("zh", "拜拜 你是谁", "who"),
        ("en", "who is this stop calling me", "do_not_call"),
        ("en", "bye and don't call me again", "do_not_call"),
        ("en", "what did you say let me talk to a person", "human"),
        ("en", "who are you sorry what", "repeat"),
        ("en", "goodbye who is this", "who"),
    ],
)
def test_strongest_request_wins(reader, language, text, wanted):
    assert reader.read(text, language, NOW).request == wanted


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "no one is home"),
        ("en", "I know what you mean"),
        ("en", "byeee"),  # not a word we know; and "bye" is not inside it
        ("en", "my agency called"),
        ("zh", "嗯"),
        ("zh", "拜托快一点"),
    ],
)
def test_no_request_in_ordinary_words(reader, language, text):
    assert reader.read(text, language, NOW).request is None


def test_answer_with_request_and_callback_time(reader):
    got = reader.read("可以啊 下午三点以后再打吧", "zh", NOW)
    assert got == Understood(
        yes_no="yes",
        request=None,
        phrase="可以",
        callback_at=datetime(2025, 3, 12, 15, 0, tzinfo=NOW.tzinfo),
        callback_phrase="下午三点以后",
    )
    got = reader.read("no thanks bye", "en", NOW)
    assert (got.yes_no, got.request, got.phrase, got.callback_at) == ("no", "goodbye", "bye", None)
    got = reader.read("sure but call me back in an hour", "en", NOW)
    assert (got.yes_no, got.callback_phrase) == ("yes", "in an hour")
    assert got.callback_at == datetime(2025, 3, 12, 11, 0, tzinfo=NOW.tzinfo)


@pytest.mark.parametrize(
    ("language", "text", "books"),
    [
        ("en", "does the first month start at 3?", False),
        ("en", "I get paid tomorrow morning", False),
        ("en", "I'm busy, call me after 3", True),
        ("en", "try me again tomorrow morning", True),
        ("zh", "下午三点开始算吗？", False),
        ("zh", "我下午三点有空", True),
        ("zh", "明天上午再联系吧", True),
    ],
)
def test_a_time_books_a_callback_only_when_the_caller_asks_to_be_called(
    reader, language, text, books
):
    assert (reader.read(text, language, NOW).callback_at is not None) is books


def test_without_callback_phrases_any_time_books_one():
    reader = AnswerReader({"en": _pack()})
    assert reader.read("after 3", "en", NOW).callback_at is not None


def _pack(**lists: list[str]) -> AnswerPhrases:
    base = {
        k: [k.upper()] for k in ("yes", "no", "do_not_call", "human", "repeat", "who", "goodbye")
    }
    return AnswerPhrases(**(base | lists))


def test_the_lists_decide_not_the_code():
    """A technician's edit changes the meaning: the code has no phrases of its own."""
    reader = AnswerReader({"en": _pack(yes=["aye"], no=["nay"], unsure=["mayhap"])})
    assert reader.read("aye", "en", NOW).yes_no == "yes"
    assert reader.read("yes", "en", NOW).yes_no is None
    assert reader.read("aye nay", "en", NOW).yes_no == "no"
    assert reader.read("nay aye mayhap", "en", NOW).yes_no is None
    with pytest.raises(ValueError, match="'fr'"):
        reader.read("oui", "fr", NOW)


def test_a_phrase_in_two_lists_is_an_error():
    with pytest.raises(ValidationError, match="'要' is also listed in yes"):
        _pack(yes=["好", "要"], no=["要"])
    with pytest.raises(ValidationError, match="empty phrase"):
        _pack(goodbye=[" "])


def test_a_phrase_in_two_lists_is_reported_on_its_line(tmp_path):
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    old = "      unsure: [不知道,"
    assert old in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(old, "      unsure: [不要, 不知道,", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_model(path, EdgecallConfig)
    (issue,) = info.value.issues
    assert issue.field == "languages.zh.answers.unsure[0]"
    assert issue.message == "'不要' is also listed in no"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[issue.line - 1].startswith("      unsure: [不要")
