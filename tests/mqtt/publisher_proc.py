"""A stand-alone appliance stand-in for tests that SIGKILL the publishing process.

Opens the outbox in --state-dir, starts the link to 127.0.0.1:--port, queues
--count events (numbered from --start) and prints progress lines the test waits
for: READY, QUEUED <n>. Runs until killed or until the outbox is empty when
--exit-when-drained is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from edgecall.config.mqtt import MqttConfig
from edgecall.messages import EVENT_SCHEMA, Identity, envelope
from edgecall.mqtt.link import MqttLink
from edgecall.mqtt.outbox import Outbox


async def main(args: argparse.Namespace) -> int:
    cfg = MqttConfig(
        host="127.0.0.1",
        port=args.port,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.3,
        keepalive_s=5,
    )
    identity = Identity(site_id="site-1", appliance_id=args.appliance)
    outbox = await Outbox.open(Path(args.state_dir) / "outbox.sqlite")
    link = MqttLink(cfg, identity, outbox)
    task = asyncio.create_task(link.run())
    print("READY", flush=True)
    for i in range(args.start, args.start + args.count):
        msg = envelope(identity, EVENT_SCHEMA, {"type": "test", "n": i}, call_id="c1", seq=i)
        await link.publish_event(msg)
    print(f"QUEUED {args.count}", flush=True)
    while not (args.exit_when_drained and outbox.depth == 0):
        await asyncio.sleep(0.05)
    link.stop()
    await task
    await outbox.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--appliance", default="box-1")
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--exit-when-drained", action="store_true")
    sys.exit(asyncio.run(main(p.parse_args())))
