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

from edgecall.calls import (
    FRAMES_PER_CHUNK,
    FRAMES_PER_CHUNK_TALKING,
    CallController,
    CallServices,
    HeardUtterance,
)
from edgecall.config.root import EdgecallConfig
from edgecall.messages import Identity
from edgecall.rules.session import Lexicons
from edgecall.speech.speaker import Piece, Speech
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
        self.frames = (0, 0)  # (received, dropped), as the real sink counts them

    def audio(self, call_id):
        return self.queue

    def frame_counts(self, call_id):
        return self.frames

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


class FakeSpeaker:
    """Plays each prompt's recording as one piece, as the real speaker does for a recording;
    a prompt without one is a prompt no voice could say."""

    async def _one(self, speech, wav):
        if wav is None:
            speech.notes.append("no voice could say it")
            return
        speech.source, speech.duration_s = "recorded", 0.01
        yield Piece(wav, 0.01)

    def speech(self, language, text, *, wav=None, cacheable=True):
        speech = Speech(text, language)
        return speech, self._one(speech, wav)


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


class FakeDnc:
    def __init__(self) -> None:
        self.added: list[tuple] = []

    def add(self, number, *, reason, call_id, t):
        self.added.append((number, reason, call_id))
        return True


def make_call(cfg, *, analyzer=None, sms=None, transfer_code=202, direction="inbound", dnc=None):
    tel, pub = FakeTelephony(transfer_code), FakePublisher()
    services = CallServices(
        cfg=cfg,
        lexicons=Lexicons(cfg),
        identity=Identity("site", "edge"),
        telephony=tel,
        publisher=pub,
        analyzer=analyzer,
        speaker=FakeSpeaker(),
        sms=sms,
        dnc=dnc,
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
    for _ in range(600):  # the hang-up waits up to LISTEN_GRACE_S for the caller's last audio
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
    assert ("play", "network_problem.wav", False) in tel.log  # not cut short by the caller


async def test_failed_sms_still_ends_with_the_outcome(cfg):
    call, tel, pub = make_call(cfg, sms=FakeSms(ok=False))
    call.on_confirmed()
    for _ in range(600):
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


async def test_a_prompt_nobody_can_say_is_logged_and_reported_not_fatal(shipped_config, caplog):
    call, tel, pub = make_call(shipped_config)  # shipped prompts have text only
    call.on_confirmed()
    await asyncio.sleep(0.05)
    assert tel.log == []
    await call.on_disconnected(not_connected=None)
    assert check_messages(pub)["outcome"] == "abandoned"
    played = [m for _, m in pub.sent if m.get("type") == "prompt.played"]
    assert played and played[0]["situation"] == "opening"
    assert played[0]["source"] == "none" and played[0]["ended"] == "failed"
    assert played[0]["notes"] == ["no voice could say it"]
    assert "caller hears nothing" in caplog.text


async def test_prompt_played_reports_barge_in_and_where(cfg):
    call, tel, pub = make_call(cfg)

    async def cut_short(call_id, wav, *, barge_in=False):
        tel.log.append(("play", Path(wav).name, barge_in))
        return "barge_in"

    tel.play = cut_short
    call.on_confirmed()
    await asyncio.sleep(0.05)
    await call.on_disconnected(not_connected=None)
    check_messages(pub)
    played = next(m for _, m in pub.sent if m.get("type") == "prompt.played")
    assert played["ended"] == "barge_in" and played["source"] == "recorded"
    assert 0 <= played["played_s"] <= played["duration_s"]
    assert played["first_audio_ms"] is not None


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


@pytest.mark.parametrize(("dropped", "noted"), [(0, False), (37, True)])
async def test_caller_audio_the_analysis_lost_is_counted_in_the_outcome(cfg, dropped, noted):
    call, tel, pub = make_call(cfg, analyzer=RecordingAnalyzer())
    call.on_confirmed()
    tel.frames = (1500, dropped)
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    notes = [m for m in check_messages(pub)["missing"] if m.startswith("caller audio")]
    assert notes == (["caller audio: 37 of 1500 frames dropped (analysis behind)"] if noted else [])


class SizingAnalyzer:
    """Notes the size of every chunk it is fed, in frames."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def feed(self, call_id, pcm, language):
        self.sizes.append(len(pcm) // 640)
        return []

    async def flush(self, call_id, language):
        return []

    async def close_call(self, call_id):
        pass


async def test_chunks_are_short_while_the_caller_talks_and_long_when_the_line_is_quiet(
    cfg, monkeypatch
):
    import edgecall.calls as calls

    monkeypatch.setattr(calls, "TALKING_S", 0.5)
    analyzer = SizingAnalyzer()
    call, tel, pub = make_call(cfg, analyzer=analyzer)
    call.on_confirmed()
    loud, quiet = b"\x00\x10" * 320, b"\0" * 640

    async def frames(frame: bytes, n: int) -> None:
        for _ in range(n):
            await tel.queue.put(frame)
            await asyncio.sleep(0.005)

    await frames(quiet, 2 * FRAMES_PER_CHUNK)  # nobody has spoken yet: long chunks
    await frames(loud, 3 * FRAMES_PER_CHUNK)  # the caller talks: short from the first sound
    await frames(quiet, 2 * FRAMES_PER_CHUNK_TALKING)  # a pause: still short
    await asyncio.sleep(0.6)  # quiet for longer than TALKING_S
    await frames(quiet, 2 * FRAMES_PER_CHUNK)
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    check_messages(pub)
    short, long = FRAMES_PER_CHUNK_TALKING, FRAMES_PER_CHUNK
    assert analyzer.sizes[:3] == [long, long, long]  # the third holds the first loud frames
    talk = analyzer.sizes[3:]
    assert talk[: 2 * long // short] == [short] * (2 * long // short)
    assert talk[-2:] == [long, long]
    assert sum(analyzer.sizes) == 5 * long + 2 * short + 2 * long


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
    assert turns[-1]["reply"]["situation"] == "do_not_call"  # decided and published...
    assert [e for e in tel.log if e[0] == "play"] == plays  # ...but not played into a dead call
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def ask_not_to_be_called(cfg, words: str, dnc: FakeDnc | None):
    """A call whose caller says `words` once; returns the telephony log and the outcome."""
    call, tel, pub = make_call(cfg, analyzer=ScriptedAnalyzer([(words, 0.0)]), dnc=dnc)
    call.on_confirmed()
    await speak(tel, 1)
    for _ in range(300):
        await asyncio.sleep(0.01)
        if ("hangup", "flow ended: do_not_call") in tel.log:
            break
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    return tel.log, check_messages(pub)


async def test_stop_calling_me_is_recorded_before_the_goodbye_and_then_the_call_ends(cfg):
    dnc = FakeDnc()
    log, outcome = await ask_not_to_be_called(cfg, "别再打了！", dnc)
    assert (outcome["outcome"], outcome["end_reason"]) == ("failed", "do_not_call")
    assert dnc.added == [("+8613800000001", "caller: '别再打了'", "call-1")]
    assert log[-2:] == [("play", "do_not_call.wav", False), ("hangup", "flow ended: do_not_call")]


async def test_a_do_not_call_the_box_cannot_record_is_in_the_outcome(cfg):
    _, outcome = await ask_not_to_be_called(cfg, "别再打了", None)
    assert "do-not-call not recorded: no do-not-call list" in outcome["missing"]


async def test_the_dtmf_key_for_a_person_transfers_the_call(cfg):
    call, tel, pub = make_call(cfg)
    call.on_confirmed()
    await asyncio.sleep(0.05)
    call.on_dtmf("5")  # means nothing here
    call.on_dtmf("0")
    for _ in range(200):
        await asyncio.sleep(0.01)
        if call.session.ended:
            break
    outcome = check_messages(pub)
    assert (outcome["outcome"], outcome["reason"]) == ("transferred", "caller pressed 0")
    digits = [m["digit"] for _, m in pub.sent if m.get("type") == "dtmf"]
    assert digits == ["5", "0"]


async def test_silence_after_a_prompt_asks_once_then_closes_but_sound_resets_it(cfg):
    data = cfg.model_dump()
    data["rules"]["conversation"]["silence_s"] = 0.3
    quiet = EdgecallConfig.model_validate(data)
    call, tel, pub = make_call(quiet)
    call.on_confirmed()
    for _ in range(20):  # the caller makes a sound every 0.1 s: no silence
        await tel.queue.put(b"\x00\x10" * 320)
        await asyncio.sleep(0.02)
    assert [e[1] for e in tel.log if e[0] == "play"] == ["opening.wav"]
    for _ in range(300):
        await asyncio.sleep(0.01)
        if ("hangup", "flow ended: silence") in tel.log:
            break
    played = [e[1] for e in tel.log if e[0] == "play"]
    assert played == ["opening.wav", "still_there.wav", "opening.wav", "goodbye.wav"]
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    outcome = check_messages(pub)
    assert (outcome["outcome"], outcome["reason"][:8]) == ("abandoned", "silence:")


async def test_caller_audio_is_kept_when_recordings_dir_is_set(cfg, tmp_path):
    import wave

    data = cfg.model_dump()
    data["storage"].update(state_dir=str(tmp_path), recordings_dir="recordings")
    call, tel, pub = make_call(EdgecallConfig.model_validate(data))
    call.on_confirmed()
    await speak(tel, 3)
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    check_messages(pub)
    (path,) = (tmp_path / "recordings").glob("*.wav")
    assert path.name.endswith("-call-1.wav")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, 3 * 5 * 320)


async def test_a_recording_that_cannot_be_written_is_noted_and_the_call_goes_on(cfg, tmp_path):
    (tmp_path / "recordings").write_text("a file where the directory should be")
    data = cfg.model_dump()
    data["storage"].update(state_dir=str(tmp_path), recordings_dir="recordings")
    call, tel, pub = make_call(EdgecallConfig.model_validate(data))
    call.on_confirmed()
    await speak(tel, 1)
    await tel.queue.put(None)
    await call.on_disconnected(not_connected=None)
    outcome = check_messages(pub)
    assert any(m.startswith("recording ") for m in outcome["missing"]), outcome["missing"]
