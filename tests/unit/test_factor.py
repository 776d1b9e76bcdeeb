"""Section 2: understanding effect and the influencing factor, in Chinese and English."""

from __future__ import annotations

import pytest

from edgecall.rules.factor import influencing_factor
from edgecall.rules.keywords import KeywordExtractor
from edgecall.rules.understanding import UnderstandingJudge


@pytest.fixture(scope="module")
def tools(shipped_config):
    extractor = KeywordExtractor(
        shipped_config.topics, {k: v.stopwords for k, v in shipped_config.languages.items()}
    )
    return extractor, UnderstandingJudge(shipped_config.topics, extractor)


def factor(tools, prev, reply, now, lang):
    return influencing_factor(*tools, prev, reply, now, lang)


def test_seed_example_price_answered_is_positive(tools):
    _, judge = tools
    u = judge.judge(
        "这个的费用情况呢", "我们这个产品的原价是199，现如今通过我们渠道购买的话是139", "zh"
    )
    assert u.effect == "positive"
    assert u.asked_topics == ("price",)


def test_seed_example_price_dodged_is_negative(tools):
    _, judge = tools
    u = judge.judge("这个的费用情况呢", "我们的价格非常优惠", "zh")
    assert (u.effect, u.unanswered_topics) == ("negative", ("price",))


def test_synonyms_map_to_one_topic(tools):
    extractor, _ = tools
    zh = {k.term for k in extractor.extract("多少钱？价格贵不贵？", "zh")}
    en = {k.term for k in extractor.extract("What does it cost, is it expensive?", "en")}
    assert "price" in zh and "price" in en
    assert not ({"多少钱", "价格", "cost", "expensive"} & (zh | en))


def test_zh_negative_effect_shared_keyword(tools):
    f = factor(tools, "这个的费用情况呢", "我们的价格非常优惠", "到底多少钱啊，太贵了", "zh")
    assert (f.effect, f.keyword, f.rule) == (
        "negative",
        "price",
        "shared_by_previous_and_current_utterance",
    )


def test_zh_negative_effect_keyword_missing_from_reply(tools):
    f = factor(tools, "合约期是多久？", "我们的网络覆盖很广。", "那我不要了", "zh")
    assert f.effect == "negative"
    assert (f.keyword, f.rule) == ("contract", "in_previous_utterance_not_in_reply")


def test_zh_positive_effect_shared_reply_and_current(tools):
    f = factor(tools, "流量有多少？", "套餐含每月100G全国流量。", "100G流量挺好的，我要了", "zh")
    assert f.effect == "positive"
    assert (f.keyword, f.rule) == ("data", "shared_by_previous_reply_and_current_utterance")


def test_zh_positive_effect_top_keyword_of_reply(tools):
    f = factor(tools, "流量有多少？", "套餐含每月100G全国流量。", "好的，那就办理吧", "zh")
    assert f.effect == "positive"
    assert (f.keyword, f.rule) == ("data", "top_keyword_of_previous_reply")


def test_en_negative_effect_shared_keyword(tools):
    f = factor(
        tools, "How much is it?", "Our price is very competitive.", "So what is the price?", "en"
    )
    assert (f.effect, f.keyword) == ("negative", "price")


def test_en_negative_effect_keyword_missing_from_reply(tools):
    f = factor(
        tools,
        "Can I cancel the contract anytime?",
        "Our network is the fastest.",
        "Forget it.",
        "en",
    )
    assert (f.effect, f.keyword, f.rule) == (
        "negative",
        "contract",
        "in_previous_utterance_not_in_reply",
    )


def test_en_positive_effect(tools):
    f = factor(
        tools,
        "How much data do I get?",
        "You get 100 GB of data every month.",
        "100 GB of data is plenty, great.",
        "en",
    )
    assert (f.effect, f.keyword) == ("positive", "data")


def test_en_plain_keyword_when_no_topic(tools):
    f = factor(
        tools,
        "Is the router free?",
        "Our technicians install everything.",
        "Technicians at home? No way.",
        "en",
    )
    assert f.effect == "negative"
    assert f.keyword == "router"
    assert f.is_topic is False


def test_empty_text_gives_no_factor(tools):
    f = factor(tools, "", "", "", "zh")
    assert f.keyword is None and f.rule == "none"
