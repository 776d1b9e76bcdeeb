"""Pure pieces of the telephony layer: E-model, outcomes, header parsing, audio sink."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from edgecall.config.sip import AutoAnswerRule
from edgecall.telephony.media import FRAME_BYTES, AudioSink
from edgecall.telephony.outcome import call_outcome, match_rule
from edgecall.telephony.quality import RtpCounters, interval_figures, mos_from_r, r_factor
from edgecall.telephony.sip_headers import all_headers, header_values


def test_emodel_reference_points():
    assert r_factor(0, 0) == pytest.approx(93.2)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)
    assert mos_from_r(-5) == 1.0 and mos_from_r(120) == 4.5
    # delay beyond 177.3 ms costs extra; loss costs more than delay at these levels
    assert r_factor(300, 0) < r_factor(150, 0) - 0.024 * 150
    assert mos_from_r(r_factor(40, 5)) < 3.9 < mos_from_r(r_factor(40, 1))


def test_interval_figures_use_deltas_and_treat_silence_as_total_loss():
    a = RtpCounters(100, 0, 0, 1.0, None, 40.0)
    b = RtpCounters(145, 5, 0, 2.0, 10.0, 40.0)
    fig = interval_figures(a, b, "PCMU")
    assert fig.rx_packets == 45 and fig.loss_pct == 10.0 and fig.rtt_ms == 10.0
    assert fig.delay_ms == 5.0 + 40.0 + 20.0
    silent = interval_figures(b, b, "G722")
    assert silent.loss_pct == 100.0 and silent.mos < 1.5
    clean = interval_figures(None, RtpCounters(50, 0, 0, 0.5, None, 20.0), "G722")
    assert clean.loss_pct == 0.0 and clean.mos > 4.3


@pytest.mark.parametrize(
    ("direction", "kw", "expected"),
    [
        ("outbound", dict(confirmed=False, code=486), "busy"),
        ("outbound", dict(confirmed=False, code=487, ring_timed_out=True), "no_answer"),
        ("outbound", dict(confirmed=False, code=603), "rejected"),
        ("outbound", dict(confirmed=False, code=404), "failed"),
        ("outbound", dict(confirmed=True, code=200), "completed"),
        ("inbound", dict(confirmed=True, code=200, transferred=True), "transferred"),
        ("inbound", dict(confirmed=False, code=486, rejected_locally=True), "busy"),
        ("inbound", dict(confirmed=False, code=603, rejected_locally=True), "rejected"),
        ("inbound", dict(confirmed=False, code=487), "abandoned"),
    ],
)
def test_call_outcome(direction, kw, expected):
    args = dict(ring_timed_out=False, transferred=False, rejected_locally=False) | kw
    assert call_outcome(direction, **args) == expected


def test_match_rule_first_match_wins():
    rules = [AutoAnswerRule(match_from="sip:9", answer=False), AutoAnswerRule(match_to="sip:1001@")]
    assert match_rule(rules, "sip:900@pbx", "sip:1001@pbx") == 0
    assert match_rule(rules, "sip:1002@pbx", "sip:1001@pbx") == 1
    assert match_rule(rules, "sip:1002@pbx", "sip:1009@pbx") is None


def test_header_values_case_folding_and_continuations():
    msg = (
        "INFO sip:1001@x SIP/2.0\r\nVia: a\r\nx-signal-strength: -97\r\n"
        "X-Other: 1\r\n  continued\r\nContent-Length: 5\r\n\r\nX-Signal-Strength: -1"
    )
    assert header_values(msg, ["X-Signal-Strength"]) == [("X-Signal-Strength", "-97")]
    assert header_values(msg, ["X-Other"]) == [("X-Other", "1 continued")]
    assert all_headers(msg)["Via"] == "a"
    assert header_values(msg, []) == []


async def test_audio_sink_drops_oldest_and_detects_barge_in():
    barged: list[int] = []
    sink = AudioSink(maxsize=3, on_barge_in=lambda: barged.append(1), level_dbfs=-30, min_ms=60)
    quiet = np.zeros(FRAME_BYTES // 2, dtype="<i2").tobytes()
    loud = (np.sin(np.arange(FRAME_BYTES // 2) / 3) * 8000).astype("<i2").tobytes()
    sink.arm_barge_in(True)
    # clicks with quiet between them never add up to speech
    for frame in (loud, quiet, loud, quiet, loud, quiet):
        sink.deliver(frame)
    assert barged == [] and sink.dropped == 3
    # a short gap inside speech takes one frame back instead of starting over:
    # loud, loud (2), quiet (1), loud, loud (3 = 60 ms)
    for frame in (loud, loud, quiet, loud):
        sink.deliver(frame)
    assert barged == []
    sink.deliver(loud)
    assert barged == [1]
    sink.close()
    items = [sink.queue.get_nowait() for _ in range(sink.queue.qsize())]
    assert items[-1] is None and sink.received == 11 and sink.dropped == 9
    sink.deliver(loud)  # after close: ignored
    assert sink.received == 11
    await asyncio.sleep(0)
