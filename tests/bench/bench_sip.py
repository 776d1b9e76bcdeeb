"""Benchmark: concurrent calls the SIP/media layer alone sustains with < 1% frame loss.

A real Kamailio on loopback, the appliance's Telephony in this process, and one
sip_peer process placing N simultaneous calls that each loop a speech WAV. For each N
the caller audio is consumed for --seconds and measured:

  frames/s     caller-audio frames delivered per call per second (50 = every 20 ms frame)
  loss %       frames missing against the wall clock, plus frames lost or discarded in
               RTP (from the per-second quality samples), plus frames dropped from full
               queues, as a share of what should have arrived
  CPU s/call-min  this process's CPU time per call per minute of talk (SIP + media thread)
  RSS MB/call  growth of this process's resident memory per extra call

The peer process runs on the same machine and is not counted. Stops at the first N
whose loss reaches 1%.

pjsua2 is built from third_party/ with 64 call slots per process (config_site.h), so
levels up to 64 can be tried; the analysed-call capacity is bench_daemon's subject.

Run: python -m tests.bench.bench_sip [--levels 1,4,8,16,32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from pathlib import Path

from edgecall.config.base import SecretRef
from edgecall.config.sip import SipConfig
from edgecall.telephony.events import CallStateChanged, IncomingCall, QualitySample
from edgecall.telephony.service import Telephony
from tests.harness.audio import make_wav
from tests.harness.kamailio import Kamailio
from tests.harness.sip_peer import SipPeer
from tests.sip.sip_helpers import APPLIANCE_EXT


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rtp_missing(s: QualitySample) -> float:
    """Frames of one second that were lost on the wire or discarded by the jitter buffer."""
    if s.loss_pct >= 100:
        return 50.0
    lost = s.rx_packets * s.loss_pct / (100 - s.loss_pct)
    return lost + s.rx_packets * s.discard_pct / 100


async def next_event(
    tel: Telephony, kind: type | tuple[type, ...], timeout: float = 20.0, where=None
):
    deadline = time.monotonic() + timeout
    while True:
        ev = await asyncio.wait_for(tel.events.get(), max(0.01, deadline - time.monotonic()))
        if isinstance(ev, kind) and (where is None or where(ev)):
            return ev


async def consume(
    queue: asyncio.Queue, counts: dict[str, int], key: str, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            item = await asyncio.wait_for(queue.get(), 0.5)
        except TimeoutError:
            continue
        if item is None:
            return
        if counts.get("_measuring"):
            counts[key] += 1


async def level(
    tel: Telephony, peer: SipPeer, wav: Path, n: int, seconds: float, base_rss: float
) -> dict:
    peer.send(cmd="mode", mode="answer")
    for _ in range(n):
        peer.send(cmd="call", to=APPLIANCE_EXT, play=str(wav), loop=True)
    calls: list[str] = []
    confirmed: set[str] = set()
    while len(calls) < n or len(confirmed) < n:
        ev = await next_event(tel, (IncomingCall, CallStateChanged))
        if isinstance(ev, IncomingCall) and not ev.refused_busy:
            calls.append(ev.call_id)
        elif isinstance(ev, CallStateChanged) and ev.state == "confirmed":
            confirmed.add(ev.call_id)
    counts: dict[str, int] = dict.fromkeys(calls, 0)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consume(tel.audio(c), counts, c, stop)) for c in calls]
    await asyncio.sleep(1.5)  # settle: jitter buffers filled, players running
    drops0 = {c: tel.frame_counts(c)[1] for c in calls}
    samples: list[QualitySample] = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            tel.events.get_nowait()
    counts["_measuring"] = 1
    cpu0, t0 = time.process_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            ev = await asyncio.wait_for(tel.events.get(), 0.2)
        except TimeoutError:
            continue
        if isinstance(ev, QualitySample):
            samples.append(ev)
    counts["_measuring"] = 0
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    rss = rss_mb()
    drops = sum(tel.frame_counts(c)[1] - drops0[c] for c in calls)
    expected = wall * 50 * n
    got = sum(counts[c] for c in calls)
    rtp_loss_frames = sum(rtp_missing(s) for s in samples)
    missing = max(0.0, expected - got) + rtp_loss_frames + drops
    mos = [s.mos for s in samples]
    peer.send(cmd="hangup")
    stop.set()
    for t in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(t, 5)
    ended: set[str] = set()
    with contextlib.suppress(TimeoutError):
        while len(ended) < n:
            ev = await next_event(
                tel, CallStateChanged, timeout=10, where=lambda e: e.state == "disconnected"
            )
            ended.add(ev.call_id)
    await asyncio.sleep(1.0)
    return {
        "calls": n,
        "frames_s": got / wall / n,
        "loss_pct": 100 * missing / expected,
        "mos": min(mos) if mos else 0.0,
        "cpu_per_call_min": cpu / n * 60 / wall,
        "cpu_pct": 100 * cpu / wall,
        "rss_per_call": (rss - base_rss) / n,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", default="1,4,8,16,32")
    ap.add_argument("--seconds", type=float, default=10.0)
    opts = ap.parse_args()
    levels = [int(x) for x in opts.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp, Kamailio() as kam:
        d = Path(tmp)
        wav = make_wav(
            d / "speech.wav",
            "Hello, I am calling about my order. It has not "
            "arrived yet and I would like to know where it is, please.",
        )
        secret = d / "pw"
        secret.write_text(kam.users[APPLIANCE_EXT])
        base = random.randrange(30000, 50000, 400)
        cfg = SipConfig(
            registrar=kam.uri,
            extension=APPLIANCE_EXT,
            password=SecretRef(file=secret),
            local_port=0,
            bind_address="127.0.0.1",
            rtp_port_min=base,
            rtp_port_max=base + 399,
            agent_target="1003",
            max_concurrent_calls=max(levels),
            codecs=["G722", "PCMU"],
        )
        tel = Telephony(cfg)
        await tel.start()
        peer = SipPeer(kam.uri, "1002", kam.users["1002"], rtp_port=base + 2000)
        try:
            await peer.wait("reg", timeout=10)
            await asyncio.sleep(1.0)
            base_rss = rss_mb()
            print(f"idle RSS of the telephony process: {base_rss:.1f} MB")
            print(
                f"{'calls':>5} {'frames/s':>9} {'loss %':>7} {'min MOS':>8} "
                f"{'CPU s/call-min':>15} {'CPU %':>6} {'RSS MB/call':>12}"
            )
            for n in levels:
                r = await level(tel, peer, wav, n, opts.seconds, base_rss)
                print(
                    f"{r['calls']:>5} {r['frames_s']:>9.1f} {r['loss_pct']:>7.2f} "
                    f"{r['mos']:>8.2f} {r['cpu_per_call_min']:>15.2f} {r['cpu_pct']:>6.1f} "
                    f"{r['rss_per_call']:>12.2f}",
                    flush=True,
                )
                if r["loss_pct"] >= 1.0:
                    print(f"loss reached 1% at {n} calls")
                    break
        finally:
            peer.close()
            await tel.stop()


if __name__ == "__main__":
    asyncio.run(main())
