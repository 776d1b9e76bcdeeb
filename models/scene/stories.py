"""The trace generators ("stories" of how each scene looks), by name, for training
and leave-one-story-out evaluation (issue 19).

Each story is an independently assumed world (documented in its module and in
MODEL_CARD.md); the model is trained on a mix of all of them (domain
randomisation), and judged on a story it was not trained on.

Usage: `python stories.py --story b --seed 7 --per-scene 2` prints example
traces as JSON lines (`{"scene": ..., "trace": [...]}`, missing samples as null).
"""

from __future__ import annotations

import argparse
import json
import sys

import generate
import generate_b
import generate_c
import numpy as np

STORIES: dict[str, generate.TraceFn] = {
    "a": generate.generate_trace,
    "b": generate_b.generate_trace,
    "c": generate_c.generate_trace,
}


def story_dataset(
    story: str, per_scene: int, seed: int, scenes: tuple[str, ...] = generate.SCENE_NAMES
) -> tuple[list[np.ndarray], np.ndarray]:
    """`per_scene` shuffled traces of each scene from one story; the seed is mixed
    with the story's name so stories never share a random stream."""
    story_seed = seed * 100 + sorted(STORIES).index(story)
    return generate.generate_dataset(per_scene, story_seed, scenes, STORIES[story])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--story", choices=sorted(STORIES), default="a")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-scene", type=int, default=1)
    args = ap.parse_args(argv)
    traces, labels = story_dataset(args.story, args.per_scene, args.seed)
    for trace, label in zip(traces, labels, strict=True):
        scene = generate.SCENE_NAMES[label]
        print(json.dumps({"scene": scene, "trace": generate.as_reported(trace)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
