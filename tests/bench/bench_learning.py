"""Does the box learn? Conversion over time for each learning loop (issue 16 part 5).

Thousands of simulated calls (tests/harness/population.py: its docstring lists the
assumptions about the callers) go through the real rule engine, flows, history and
learning code, once per loop switched on alone, with all of them, and with none (the
fixed script). Each arm runs several seeds; the table pools them per window of calls
and gives the Wilson 95 % interval. The last columns compare each arm with the fixed
script after the first 2,000 calls.

    .venv/bin/python -m tests.bench.bench_learning [--calls 2500] [--seeds 5] [--window 500]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from edgecall.config.loader import load_model
from edgecall.config.root import EdgecallConfig
from tests.harness.population import ARMS, PERSONALISED_ARMS, simulate

REPO = Path(__file__).resolve().parents[2]
AFTER = 2000  # the goal: all loops together convert 1.3x the fixed script after this


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2500, help="calls per arm and seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--window", type=int, default=500, help="calls per column")
    args = parser.parse_args()
    cfg = load_model(REPO / "config.yaml", EdgecallConfig)
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bench-learning-", dir=scratch) as tmp:
        for arms in (ARMS, PERSONALISED_ARMS):
            sales: dict[str, list[list[bool]]] = {}
            for arm in arms:
                started = time.monotonic()
                sales[arm.name] = [
                    simulate(cfg, arm, Path(tmp) / f"{arm.name}-{seed}", seed, args.calls)
                    for seed in range(1, args.seeds + 1)
                ]
                spent = time.monotonic() - started
                print(
                    f"# {arm.name}: {args.seeds} x {args.calls} calls in {spent:.0f} s", flush=True
                )
            table(sales, args.calls, args.window)
    print(
        f"\n{args.seeds} seeds x {args.calls} calls per arm; conversion = sales / calls, "
        "Wilson 95 % interval over the pooled seeds. The second table (issue 18): the same "
        "population when the dial list names no group, without and with the groups the "
        "interest model predicts from the list features."
    )


def table(sales: dict[str, list[list[bool]]], calls: int, window: int) -> None:
    """Conversion per window, and against the first arm after AFTER calls."""
    windows = [(a, min(a + window, calls)) for a in range(0, calls, window)]
    head = " | ".join(f"calls {a + 1}-{b}" for a, b in windows)
    first = next(iter(sales))
    print(f"\n| arm | {head} | after {AFTER} | vs {first} |")
    print("|---|" + "---|" * (len(windows) + 2))
    k0, n0 = _late(sales[first])
    for name, runs in sales.items():
        cells = []
        for a, b in windows:
            k = sum(sum(run[a:b]) for run in runs)
            n = sum(len(run[a:b]) for run in runs)
            lo, hi = wilson(k, n)
            cells.append(f"{k / n:.1%} ({lo:.1%}-{hi:.1%})")
        k, n = _late(runs)
        lo, hi = wilson(k, n)
        ratio = (k / n) / (k0 / n0) if k0 else float("nan")
        late = f"{k / n:.1%} ({lo:.1%}-{hi:.1%})"
        print(f"| {name} | " + " | ".join(cells) + f" | {late} | {ratio:.2f}x |")


def _late(runs: list[list[bool]]) -> tuple[int, int]:
    return sum(sum(r[AFTER:]) for r in runs), sum(len(r[AFTER:]) for r in runs)


if __name__ == "__main__":
    main()
