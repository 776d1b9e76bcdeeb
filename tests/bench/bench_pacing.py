"""Answer rate when the first call goes into the customer's preferred answer slot, against
calling whenever the hours allow (issue 18 part 5).

A simulated list (assumptions below) is run through the real campaign queue
(`edgecall.campaign_queue`) and pacing rules (`edgecall.rules.pacing.call_at`,
`after_call`) on a simulated clock, one minute per step, with the shipped retail-zh
`dialing` section; no SIP. Assumptions: each customer has one preferred slot of
`assist.time_slots` (morning, afternoon, evening, in equal shares) and is in
Asia/Shanghai; a call in the preferred slot is answered with probability IN_SLOT, one
outside it with OUT_OF_SLOT; a call not answered is a no_answer (retried after
`retry_s.no_answer`, up to `max_attempts`); the box has LINES lines and a call takes
CALL_MIN minutes.

    .venv/bin/python -m tests.bench.bench_pacing [--customers 2000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from edgecall.campaign_queue import CampaignQueue
from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from edgecall.rules.pacing import call_at, windows

REPO = Path(__file__).resolve().parents[2]
IN_SLOT, OUT_OF_SLOT = 0.6, 0.15
LINES, CALL_MIN = 4, 3
DAYS = 5
START = 1_800_000_000.0 - (1_800_000_000.0 % 86400) - 8 * 3600  # a midnight in Shanghai


def run(cfg: EdgecallConfig, prefer: bool, customers: int, seed: int, tmp: Path) -> dict:
    rules = cfg.campaigns["retail-zh"].dialing.model_copy(update={"prefer_answer_slots": prefer})
    slots = {s.name: windows([f"{s.start}-{s.end}"]) for s in cfg.assist.time_slots}
    zone = ZoneInfo("Asia/Shanghai")
    rng = random.Random(seed)
    queue = CampaignQueue(tmp / f"dials-{prefer}-{seed}.sqlite", now=START)
    people = [
        {
            "number": f"+86138{i:08d}",
            "dial": f"+86138{i:08d}",
            "answer_slots": [rng.choice(list(slots))],
        }
        for i in range(customers)
    ]
    queue.start("retail-zh", "sim", people, START)
    slot_of = {p["number"]: p["answer_slots"][0] for p in people}
    busy_until: list[float] = []
    calls = answered = 0
    t = START
    while t < START + DAYS * 86400:
        busy_until = [b for b in busy_until if b > t]
        room = LINES - len(busy_until)
        while room > 0:
            due = queue.due("retail-zh", t, room)
            if not due:
                break
            for entry in due:
                when = call_at(
                    t, zone, rules, first=entry.attempts == 0, preferred=slots[entry.slots[0]]
                )
                if when > t:
                    queue.reschedule(entry.id, when)
                    continue
                call_id = f"{entry.id}-{entry.attempts}"
                queue.dialling(entry.id, call_id)
                calls += 1
                room -= 1
                busy_until.append(t + CALL_MIN * 60)
                liked = slots[slot_of[entry.number]][0]
                now = datetime.fromtimestamp(t, zone).time()
                p = IN_SLOT if liked.start <= now < liked.end else OUT_OF_SLOT
                ok = rng.random() < p
                answered += ok
                outcome = (
                    {"outcome": "completed"}
                    if ok
                    else {"outcome": "not_connected", "reason": "no_answer"}
                )
                queue.finished(call_id, outcome, t + CALL_MIN * 60, rules)
        t += 60
    progress = queue.progress("retail-zh")
    queue.close()
    return {
        "calls": calls,
        "answer_rate": answered / calls if calls else 0.0,
        "reached": progress["answered"] / customers,
        "unreachable": progress["finals"].get("unreachable", 0) / customers,
        "remaining": progress["remaining"] / customers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    cfg = load_model(REPO / "config.yaml", EdgecallConfig)
    head = "| first call | calls | answer rate | reached | unreachable | not called |"
    print(head)
    print("|---|---|---|---|---|---|")
    scratch = "/dev/shm" if Path("/dev/shm").is_dir() else None  # fsync is cheap there
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        for prefer in (False, True):
            runs = [
                run(cfg, prefer, args.customers, s, Path(tmp)) for s in range(1, args.seeds + 1)
            ]
            mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
            name = "in the preferred slot" if prefer else "whenever the hours allow"
            cells = [f"{mean['calls']:.0f}"] + [
                f"{mean[k]:.1%}" for k in ("answer_rate", "reached", "unreachable", "remaining")
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"\n{args.customers} customers over {DAYS} days, {args.seeds} seeds, {LINES} lines, "
        f"{CALL_MIN} min a call; "
        f"answered {IN_SLOT:.0%} in the preferred slot, {OUT_OF_SLOT:.0%} outside it."
    )


if __name__ == "__main__":
    main()
