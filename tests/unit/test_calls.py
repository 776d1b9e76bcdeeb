"""The call controller's logic with stand-ins for SIP, MQTT and the models.

The same flows run for real (Kamailio, mosquitto, a PJSUA2 caller) in the
end-to-end tests; these check ordering and edge cases quickly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgecall.calls import FRAMES_PER_CHUNK, CallController, CallServices, HeardUtterance
from edgecall.config.root import EdgecallConfig
from edgecall.messages import Identity
from edgecall.rules.session import Lexicons
from edgecall.validation import schema_errors


@dataclass
class TransferResult:
    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class FakeTelephony:
    def __init__(self, transfer_code: int = 202) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.log: list[tuple] = []
        self.controller: CallController | None = None
        self.transfer_code = transfer_code

    def audio(self, call_id):
        return self.queue

    async def play(self, call_id, wav, *, barge_in=False):
        self.log.append(("play", Path(wav).name, barge_in))
        await asyncio.sleep(0.01)
        return "completed"

    async def hangup(self, call_id, reason="normal clearing"):
        self.log.append(("hangup", reason))
        # Adversarial order: the dialog's end is processed before hangup() returns, i.e.
        # before the actions queued after the hang-up (the SMS) have started.
        self.disconnect = asyncio.ensure_future(self.controller.on_disconnected(not_connected=None))
        await asyncio.sleep(0.05)

    async def transfer(self, call_id, target):
        self.log.append(("transfer", target))
        return TransferResult(
            self.transfer_code, "Accepted" if self.transfer_code < 300 else "Busy"
        )


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def publish_event(self, m):
        self.sent.append(("event", m))
        return m["message_id"]

    async def publish_outcome(self, m):
        self.sent.append(("outcome", m))
        return m["message_id"]

    async def publish_prompt(self, ext, m):
        self.sent.append((f"prompt:{ext}", m))
        return m["message_id"]


class ScriptedAnalyzer:
    """Hears one scripted utterance per audio chunk."""

    def __init__(self, lines: list[tuple[str, float]], last: list[tuple[str, float]] = ()):
        self.lines = list(lines)
        self.last = list(last)
        self.closed = False

    async def feed(self, call_id, pcm, language):
        assert len(pcm) == 640 * FRAMES_PER_CHUNK
        if not self.lines:
            return []
        text, acoustic = self.lines.pop(0)
        return [HeardUtterance(text, 0.0, acoustic=acoustic)]

    async def flush(self, call_id, language):
        return [HeardUtterance(t, 0.0, acoustic=a) for t, a in self.last]

    async def close_call(self, call_id):
        self.closed = True


class FakeSms:
    def __init__(self, ok=True):
        self.ok, self.sent = ok, []

    async def send(self, number, text, *, call_id=None):
        self.sent.append((number, text))
        return type("R", (), {"ok": self.ok, "route": "mqtt", "error": None})()


def with_prompts_and_fast_quality(cfg: EdgecallConfig) -> EdgecallConfig:
    data = cfg.model_dump()
    for campaign in data["campaigns"].values():
        for situation, prompt in campaign["prompts"].items():
            prompt["wav"] = f"prompts/{situation}.wav"
    data["trunk"]["sample_interval_s"] = 0.02
    data["trunk"]["stale_after_s"] = 10.0
    return EdgecallConfig.model_validate(data)


def make_call(cfg, *, analyzer=None, sms=None, transfer_code=202, direction="inbound"):
    tel, pub = FakeTelephony(transfer_code), FakePublisher()
    services = CallServices(
        cfg=cfg,
        lexicons=Lexicons(cfg),
        identity=Identity("site", "edge"),
        telephony=tel,
        publisher=pub,
        analyzer=analyzer,
        sms=sms,
        base_dir=Path("/srv/edgecall"),
    )
    call = CallController(services, call_id="call-1", direction=direction, remote="+8613800000001")
    tel.controller = call
    call.start()
    return call, tel, pub


def check_messages(pub: FakePublisher) -> dict:
    bodies = [m for _, m in pub.sent]
    assert [m["seq"] for m in bodies] == list(range(1, len(bodies) + 1))
    assert [k for k, _ in pub.sent].count("outcome") == 1
    assert pub.sent[-1][0] == "outcome"
    for m in bodies:
        assert schema_errors(m) == []
    return pub.sent[-1][1]


async def speak(tel: FakeTelephony, chunks: int) -> None:
    for _ in range(chunks * FRAMES_PER_CHUNK):
        await tel.queue.put(b"\0" * 640)
        await asyncio.sleep(0)


@pytest.fixture
def cfg(shipped_config):
    return with_prompts_and_fast_quality(shipped_config)


async def test_interest_then_frustration_transfers_with_labelled_handoff(cfg):
    analyzer = ScriptedAnalyzer(
        [
            ("你好，这是什么套餐？", 0.6),
            ("听起来不错，我挺感兴趣的，多少钱？", 0.5),
            ("什么？怎么这么贵，你们就是骗子", -0.7),
            ("烦死了，别浪费我的时间", -0.8),
        ]
    )
    call, tel, pub = make_call(cfg, analyzer=analyzer)
    call.on_confirmed()
    await speak(tel, 4)
    for _ in range(200):
        await asyncio.sleep(0.01)
        if call.session.ended:
            break
    await call.on_disconnected(not_connected=None)
    outcome = check_messages(pub)
    assert outcome["outcome"] == "transferred" and outcome["target"] == "8000"
    assert ("transfer", "8000") in tel.log
    assert tel.log[0] == ("play", "opening.wav", True)
    assert ("play", "transfer_notice.wav", False) in tel.log
    handoff = [m for k, m in pub.sent if k == "prompt:8000"]
    assert len(handoff) == 1 and len(handoff[0]["transcript"]) == 8
    assert analyzer.closed


async def test_poor_signal_prompt_then_hangup_then_sms_then_outcome(cfg):
    sms = FakeSms()
    call, tel, pub = make_call(cfg, sms=sms)
    call.on_confirmed()
    for _ in range(300):
        call.on_sip_header("-125")
        await asyncio.sleep(0.01)
        if call.finished.is_set():
            break
    assert call.finished.is_set()
    outcome = check_messages(pub)
    assert outcome["outcome"] == "poor_signal_hangup"
    assert outcome["sms"]["sent"] is True
    assert sms.sent == [
        (
            "+8613800000001",
            cfg.campaigns["retail-zh"].poor_signal_sms.replace("{product}", "5G畅享套餐"),
        )
    ]
    names = [e[0] if e[0] != "play" else e[1] for e in tel.log]
    assert names.index("network_problem.wav") < names.index("hangup")


async def test_failed_sms_still_ends_with_the_outcome(cfg):
    call, tel, pub = make_call(cfg, sms=FakeSms(ok=False))
    call.on_confirmed()
    for _ in range(300):
        call.on_sip_header("-130")
        await asyncio.sleep(0.01)
        if call.finished.is_set():
            break
    assert check_messages(pub)["sms"]["sent"] is False


async def test_outbound_busy_is_not_connected(cfg):
    call, tel, pub = make_call(cfg, direction="outbound")
    await call.on_disconnected(not_connected="busy", detail="486 Busy Here")
    outcome = check_messages(pub)
    assert (outcome["outcome"], outcome["reason"], outcome["detail"]) == (
        "not_connected",
        "busy",
        "486 Busy Here",
    )
    assert tel.log == []


async def test_last_words_before_hangup_decide_the_redial(cfg):
    analyzer = ScriptedAnalyzer([("好的，我挺感兴趣的", 0.5)], last=[("我在电梯里，等下再说", 0.3)])
    call, tel, pub = make_call(cfg, analyzer=analyzer)
    call.on_confirmed()
    await speak(tel, 1)
    for _ in range(40):  # a weak but not hopeless signal: mean below -100 dBm
        call.on_sip_header("-112")
        await asyncio.sleep(0.01)
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    outcome = check_messages(pub)
    assert (outcome["outcome"], outcome["scene"], outcome["decided_by"]) == (
        "redial_scheduled",
        "elevator",
        "stated_reason",
    )


async def test_abort_mid_call_gives_an_error_outcome(cfg):
    call, tel, pub = make_call(cfg)
    call.on_confirmed()
    await asyncio.sleep(0.05)
    await call.abort("daemon stopping")
    outcome = check_messages(pub)
    assert (outcome["outcome"], outcome["reason"]) == ("error", "daemon stopping")


async def test_missing_prompt_recording_is_skipped_not_fatal(shipped_config):
    call, tel, pub = make_call(shipped_config)  # shipped prompts have text only
    call.on_confirmed()
    await asyncio.sleep(0.05)
    assert tel.log == []
    await call.on_disconnected(not_connected=None)
    assert check_messages(pub)["outcome"] == "abandoned"


class GatedPublisher(FakePublisher):
    """The first message waits at a gate: a disk that stalls in the middle of a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.blocked = asyncio.Event()

    async def publish_event(self, m):
        if not self.gate.is_set():
            self.blocked.set()
            await self.gate.wait()
        return await super().publish_event(m)


async def test_closing_during_a_publish_batch_loses_nothing(cfg):
    call, tel, _ = make_call(cfg)
    gated = GatedPublisher()
    call.svc.publisher = gated
    hook = []
    call.svc.on_outcome = lambda c, o: hook.append((o["outcome"], len(gated.sent)))
    call.on_confirmed()  # call.started and the opening prompt are taken by the publish loop
    await asyncio.wait_for(gated.blocked.wait(), 5)
    ending = asyncio.create_task(call.on_disconnected(not_connected=None))
    await asyncio.sleep(0.1)  # the call closes while the batch is stuck
    gated.gate.set()
    await asyncio.wait_for(ending, 10)
    outcome = check_messages(gated)  # contiguous seq from 1, outcome last, exactly one
    assert outcome["outcome"] == "abandoned"
    assert hook == [("abandoned", hook[0][1])] and hook[0][1] < len(gated.sent)


class RecordingAnalyzer(ScriptedAnalyzer):
    """Hears nothing while fed; at the flush, reports how many chunks it was fed."""

    def __init__(self) -> None:
        super().__init__([])
        self.fed = 0
        self.fed_at_flush = None

    async def feed(self, call_id, pcm, language):
        await asyncio.sleep(0.005)  # analysis takes a moment
        self.fed += 1
        return []

    async def flush(self, call_id, language):
        self.fed_at_flush = self.fed
        return []


async def test_every_last_frame_is_analysed_before_the_final_flush(cfg):
    analyzer = RecordingAnalyzer()
    call, tel, pub = make_call(cfg, analyzer=analyzer)
    call.on_confirmed()
    await speak(tel, 6)  # 6 chunks queued, most not yet analysed
    await tel.queue.put(None)  # the call's audio ends
    await call.on_disconnected(not_connected=None)
    assert analyzer.fed_at_flush == 6


async def test_the_reply_to_words_heard_as_the_caller_hung_up_is_not_played(cfg, caplog):
    analyzer = ScriptedAnalyzer([], last=[("太烦了，别再打了", 0.1)])
    call, tel, pub = make_call(cfg, analyzer=analyzer)
    call.on_confirmed()
    await asyncio.sleep(0.1)  # the opening prompt plays
    plays = [e for e in tel.log if e[0] == "play"]
    assert plays
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    check_messages(pub)
    turns = [m for _, m in pub.sent if m.get("type") == "turn"]
    assert turns[-1]["utterance"] == "太烦了，别再打了"
    assert turns[-1]["reply"]["situation"] == "soothing"  # decided and published...
    assert [e for e in tel.log if e[0] == "play"] == plays  # ...but not played into a dead call
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
