"""Which prompt variant a flow node says, and which variants are retired (seed 003 S5).

A node may list several prompts (`say: [offer_a, offer_b]`). Each variant keeps, per
customer group, its uses and the calls that ended in a sale after it (`VariantStats`,
kept in the history). A call's variant is chosen by Thompson sampling: one draw from
each variant's Beta(1 + sales, 1 + uses - sales) posterior, the highest draw wins. A
variant that sells better gets more calls, a new one (a flat posterior) still gets
tried, and no fixed exploration rate has to be tuned.

A variant is retired (never chosen again for that group, still kept and reported) once
it has `min_uses` uses and either falls below the seed's floors (answer rate, talk time
after it) or the group's best variant beats it with probability `confidence`. The last
variant of a node is never retired: a node must say something.

Pure code over plain data; the draws come from a generator seeded by call and node, so
a test (and a replayed call) gets the same choice for the same statistics.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgecall.config.scripts import RetireFloors

DEFAULT_GROUP = "general"  # the customer group of a call whose dial list names none


@dataclass(frozen=True)
class VariantStats:
    """What one variant did for one customer group at one node."""

    uses: int = 0  # calls that heard it
    sales: int = 0  # of those, calls that ended in a sale
    answered: int = 0  # calls where the caller said something after it
    talk_s: float = 0.0  # seconds from the variant to the end of the call, summed
    interactions: int = 0  # caller turns after it, summed
    retired: str | None = None  # why it was retired, if it was

    @property
    def answer_rate(self) -> float:
        return self.answered / self.uses if self.uses else 0.0

    @property
    def mean_talk_s(self) -> float:
        return self.talk_s / self.uses if self.uses else 0.0


class VariantPicker:
    """Picks a node's variant for one call: by Thompson sampling over `book` (node ->
    variant -> stats, the call's customer group) or, with `bandit` off, one variant per
    call in equal shares. `extra` adds candidates a node's config does not list (the
    group's composed script)."""

    def __init__(
        self,
        book: Mapping[str, Mapping[str, VariantStats]] | None = None,
        extra: Mapping[str, Sequence[str]] | None = None,
        *,
        bandit: bool = True,
    ) -> None:
        self.book = book or {}
        self.extra = extra or {}
        self.bandit = bandit

    def __call__(self, node: str, keys: Sequence[str], call_id: str) -> str:
        candidates = [*keys, *(k for k in self.extra.get(node, ()) if k not in keys)]
        rng = rng_for(call_id, node)
        if not self.bandit:
            return candidates[rng.randrange(len(candidates))]
        return choose(candidates, self.book.get(node, {}), rng)


def rng_for(call_id: str, node: str) -> random.Random:
    """The draws of one call at one node: the same inputs give the same choice."""
    digest = hashlib.sha256(f"{call_id}/{node}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose(candidates: Sequence[str], stats: Mapping[str, VariantStats], rng: random.Random) -> str:
    """The variant to say: Thompson sampling over the candidates that are not retired."""
    live = [c for c in candidates if not _retired(stats.get(c))] or list(candidates)
    if len(live) == 1:
        return live[0]
    best, best_draw = live[0], -1.0
    for key in live:
        s = stats.get(key, VariantStats())
        draw = rng.betavariate(1 + s.sales, 1 + s.uses - s.sales)
        if draw > best_draw:
            best, best_draw = key, draw
    return best


def prob_beats(winner: VariantStats, loser: VariantStats) -> float:
    """P(p_winner > p_loser) under Beta(1 + sales, 1 + failures) posteriors, exactly
    (the closed form for integer parameters: a sum over the winner's successes)."""
    a_w, b_w = 1 + winner.sales, 1 + winner.uses - winner.sales
    a_l, b_l = 1 + loser.sales, 1 + loser.uses - loser.sales
    total = 0.0
    for i in range(a_w):
        total += math.exp(
            _log_beta(a_l + i, b_l + b_w)
            - math.log(b_w + i)
            - _log_beta(1 + i, b_w)
            - _log_beta(a_l, b_l)
        )
    return min(1.0, max(0.0, total))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


@dataclass(frozen=True)
class Retirement:
    variant: str
    why: str
    evidence: dict[str, object]


def retirements(stats: Mapping[str, VariantStats], floors: RetireFloors) -> list[Retirement]:
    """The variants of one node and group to retire now, worst first; never all of them."""
    live = {k: s for k, s in stats.items() if not _retired(s)}
    if len(live) < 2:
        return []
    judged = {k: s for k, s in live.items() if s.uses >= floors.min_uses}
    found: list[Retirement] = []
    for key, s in sorted(judged.items(), key=lambda kv: _rate(kv[1])):
        figures: dict[str, object] = {
            "uses": s.uses,
            "sales": s.sales,
            "conversion": round(_rate(s), 4),
            "answer_rate": round(s.answer_rate, 4),
            "mean_talk_s": round(s.mean_talk_s, 1),
        }
        rivals = {k: r for k, r in live.items() if k != key}
        best_key = max(rivals, key=lambda k: _rate(rivals[k]))
        p = prob_beats(rivals[best_key], s)
        if s.answer_rate < floors.min_answer_rate:
            why = f"answer rate {s.answer_rate:.0%} below the floor {floors.min_answer_rate:.0%}"
        elif s.mean_talk_s < floors.min_mean_talk_s:
            why = f"mean talk time {s.mean_talk_s:.1f} s below {floors.min_mean_talk_s:.1f} s"
        elif p >= floors.confidence:
            why = f"{best_key} sells better with probability {p:.3f}"
        else:
            continue
        found.append(Retirement(key, why, {**figures, "best": best_key, "p_best_better": p}))
        del live[key]
        if len(live) < 2:
            break
    return found


def _rate(s: VariantStats) -> float:
    return s.sales / s.uses if s.uses else 0.0


def _retired(s: VariantStats | None) -> bool:
    return s is not None and s.retired is not None
