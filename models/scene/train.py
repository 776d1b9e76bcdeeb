"""Train the scene CNN on traces of every story (stories.py; issue 19).

Input, convolution, pooling, fully connected, softmax, as seed 000 (S53) asked.
The training traces are a mix of all stories (A: generate.py, B: generate_b.py,
C: generate_c.py), each with its own randomised parameters, plus a random
level offset per trace on the dBm channel (domain randomisation); the last
VAL_FRACTION is held out to fit a softmax temperature (calibrated confidence),
folded into the last layer. Everything is seeded.

`train.py --logo` trains, for each feature set of FEATURE_SETS and each story,
a model on the other stories and reports its float figures on that story
(work/logo_metrics.json, fold weights for export.py); `train.py` trains the
shipped model on all stories with FEATURES (work/scene_fp32.pt,
work/train_metrics.json). Run via `make -C models scene`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "daemon"))  # edgecall without installing it

import augment as augment_lib  # noqa: E402
import evaluate  # noqa: E402
import generate  # noqa: E402
import stories  # noqa: E402

from edgecall.inference.scene_features import (  # noqa: E402
    CHANNELS,
    LEVEL_SCALE_DB,
    WINDOW_S,
    batch_features,
)
from edgecall.rules.scene import SCENES  # noqa: E402

SEED = 20261207
PER_SCENE = 700  # per story and scene: 3 x 5 x 700 = 10 500 training traces
VAL_FRACTION = 0.1  # held out of training to fit the softmax temperature
TEST_SEED = 4242  # fresh traces of each story; also in tests/models/test_scene.py
TEST_PER_SCENE = 200
EPOCHS = 12
BATCH = 64
LEVEL_JITTER_DB = 8.0  # domain randomisation: a random offset per trace on the dBm channel
START_S = 10  # the relative level is measured from the median of the first valid samples
SLOPE_SCALE_DB = 10.0
# channels of with_relative() compared by leave-one-story-out; raw_dbm is exactly
# scene_features.features(), what the daemon computes
FEATURE_SETS: dict[str, tuple[int, ...]] = {
    "raw_dbm": (0, 3, 4),
    "relative": (1, 2, 3, 4),
    "raw_and_relative": (0, 1, 2, 3, 4),
}
FEATURES = "raw_dbm"  # the set the shipped model uses (the best held-out mean)
AUGMENT = True  # the shipped model adds an augment.randomised() copy of every trace
# (feature set, augment) pairs that `--logo` compares, the shipped recipe among them
VARIANTS = tuple((fs, augment) for augment in (False, True) for fs in FEATURE_SETS)
WORK = HERE / "work"
WEIGHTS = WORK / "scene_fp32.pt"
TRAIN_METRICS = WORK / "train_metrics.json"
LOGO_METRICS = WORK / "logo_metrics.json"


class SceneCNN(nn.Module):
    """Three conv+pool blocks (5 s, 25 s, 150 s receptive scale), then fully connected."""

    def __init__(self, in_channels: int = CHANNELS, n_classes: int = len(SCENES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, 16, 5, padding=2),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.MaxPool1d(5),  # 300 -> 60
            nn.Conv1d(16, 32, 5, padding=2),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.MaxPool1d(5),  # 60 -> 12
            nn.Conv1d(32, 32, 3, padding=1),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.MaxPool1d(2),  # 12 -> 6
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * (WINDOW_S // 50), 64),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; the exported model appends the softmax (WithSoftmax)."""
        return self.classifier(self.features(x))


class WithSoftmax(nn.Module):
    """The deployed graph: probabilities out, so both runtimes return the same thing."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def story_set(story: str, per_scene: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Traces and labels of one story (raw traces: evaluate.accuracy_by_fraction cuts them)."""
    if generate.SCENE_NAMES != SCENES:
        raise SystemExit(f"generator scenes {generate.SCENE_NAMES} != runtime scenes {SCENES}")
    return stories.story_dataset(story, per_scene, seed, SCENES)


def with_relative(x: np.ndarray) -> np.ndarray:
    """scene_features output (level, missing, in call) plus two level-independent channels,
    to measure whether they generalise better (issue 19 step 3): the level relative to
    the median of the call's first START_S valid samples, and its change from the previous
    second / SLOPE_SCALE_DB clipped to ±1. Channels: level, relative, slope, missing, in call.
    """
    level, missing, in_call = x[:, 0] * LEVEL_SCALE_DB, x[:, 1], x[:, 2]
    valid = (missing == 0) & (in_call == 1)
    relative = np.zeros_like(level)
    for i in range(len(x)):
        first = np.flatnonzero(valid[i])[:START_S]
        reference = float(np.median(level[i, first])) if len(first) else 0.0
        relative[i] = (level[i] - reference) * in_call[i] / LEVEL_SCALE_DB
    slope = np.zeros_like(level)
    slope[:, 1:] = np.clip(np.diff(level, axis=1) / SLOPE_SCALE_DB, -1, 1) * in_call[:, :-1]
    return np.stack([x[:, 0], relative, slope, missing, in_call], axis=1).astype(np.float32)


def training_set(names: tuple[str, ...], augment: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the training traces of the given stories, shuffled; with
    `augment`, each trace also gives a copy through augment.randomised()."""
    xs, ys = [], []
    rng = np.random.default_rng(SEED + 2)
    for story in names:
        traces, labels = story_set(story, PER_SCENE, SEED)
        xs.append(batch_features(traces))
        ys.append(labels)
        if augment:
            xs.append(batch_features([augment_lib.randomised(t, rng) for t in traces]))
            ys.append(labels)
    x, y = with_relative(np.concatenate(xs)), np.concatenate(ys)
    order = np.random.default_rng(SEED + 1).permutation(len(x))
    return x[order], y[order]


def test_set(story: str) -> tuple[list[np.ndarray], np.ndarray]:
    return story_set(story, TEST_PER_SCENE, TEST_SEED)


def logits(net: nn.Module, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def predict(net: nn.Module, x: np.ndarray) -> np.ndarray:
    return logits(net, x).argmax(1)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising held-out NLL of softmax(z/T)."""
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 120))
    nll = [-np.log(_softmax(z / t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def fold_temperature(net: SceneCNN, temperature: float) -> None:
    """Divide the last layer by T, so the shipped softmax is the calibrated one."""
    last = net.classifier[-1]
    with torch.no_grad():
        last.weight /= temperature
        last.bias /= temperature


def train_net(x: np.ndarray, y: np.ndarray, channels: tuple[int, ...]) -> tuple[SceneCNN, float]:
    """Train from seeded fresh weights on the given channels; returns the calibrated net
    and its temperature (fitted on the last VAL_FRACTION of the shuffled traces)."""
    torch.manual_seed(SEED)
    n_val = int(round(len(x) * VAL_FRACTION))
    x = np.ascontiguousarray(x[:, channels])
    xt, yt = torch.from_numpy(x[n_val:]), torch.from_numpy(y[n_val:])
    jitter = channels.index(0) if 0 in channels else None
    net = SceneCNN(len(channels))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=2e-5)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(1, EPOCHS + 1):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            xb = xt[idx].clone()
            if jitter is not None:  # the same call on another network or modem
                shift = (torch.rand(len(idx), 1, generator=gen) * 2 - 1) * LEVEL_JITTER_DB
                xb[:, jitter] += shift / LEVEL_SCALE_DB * xb[:, -1]  # not in the padding
            opt.zero_grad()
            loss = loss_fn(net(xb), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        print(f"  epoch {epoch:2d}  loss {total / len(xt):.4f}", flush=True)
    temperature = fit_temperature(logits(net, x[:n_val]), y[:n_val])
    fold_temperature(net, temperature)
    return net, temperature


def float_summary(net: SceneCNN, channels: tuple[int, ...], story: str) -> dict[str, object]:
    traces, y = test_set(story)
    p = _softmax(
        logits(net, np.ascontiguousarray(with_relative(batch_features(traces))[:, channels]))
    )
    return evaluate.summary(y, p.argmax(1), p.max(1), evaluate.MIN_SCENE_CONFIDENCE, SCENES)


def variant_name(fs: str, augment: bool) -> str:
    return f"{fs}+augment" if augment else fs


def logo(only: list[str]) -> int:
    """Leave one story out, for every variant (or those named): the float figures of the
    steps of issue 19; merged into work/logo_metrics.json, fold weights in work/."""
    WORK.mkdir(exist_ok=True)
    results = json.loads(LOGO_METRICS.read_text()) if LOGO_METRICS.exists() else {}
    names = tuple(stories.STORIES)
    for fs, augment in VARIANTS:
        variant, channels = variant_name(fs, augment), FEATURE_SETS[fs]
        if only and variant not in only:
            continue
        for held_out in names:
            rest = tuple(s for s in names if s != held_out)
            print(f"{variant}: train on {'+'.join(rest)}, test on {held_out}", flush=True)
            x, y = training_set(rest, augment)
            net, temperature = train_net(x, y, channels)
            torch.save(net.state_dict(), WORK / f"fold_{variant}_{held_out}.pt")
            m = float_summary(net, channels, held_out)
            m["temperature"] = round(temperature, 3)
            results.setdefault(variant, {})[held_out] = m
            brief = {k: v for k, v in m.items() if k != "confusion"}
            print(f"  held-out {held_out}: {brief}", flush=True)
            LOGO_METRICS.write_text(json.dumps(results, indent=2))
    for fs, folds in results.items():
        accs = [f["accuracy"] for f in folds.values()]  # type: ignore[union-attr]
        print(f"{fs:<26} " + "  ".join(f"{s} {a:.3f}" for s, a in zip(folds, accs, strict=True)))
    return 0


def main() -> int:
    torch.set_num_threads(2)
    if sys.argv[1:2] == ["--logo"]:
        return logo(sys.argv[2:])
    if len(FEATURE_SETS[FEATURES]) != CHANNELS:
        raise SystemExit(f"{FEATURES} is not what edgecall.inference.scene_features computes")
    t0 = time.monotonic()
    x, y = training_set(tuple(stories.STORIES), AUGMENT)
    print(f"data: {len(x)} traces ({time.monotonic() - t0:.1f} s)", flush=True)
    net, temperature = train_net(x, y, FEATURE_SETS[FEATURES])
    WORK.mkdir(exist_ok=True)
    torch.save(net.state_dict(), WEIGHTS)
    fresh = {s: float_summary(net, FEATURE_SETS[FEATURES], s) for s in stories.STORIES}
    for s, m in fresh.items():
        print(f"fresh {s}: accuracy {m['accuracy']}, recall {m['recall']}, ece {m['ece']}")
    TRAIN_METRICS.write_text(
        json.dumps(
            {
                "seed": SEED,
                "features": FEATURES,
                "augment": AUGMENT,
                "traces": {
                    "train": int(len(x) * (1 - VAL_FRACTION)),
                    "validation": int(len(x) * VAL_FRACTION),
                },
                "epochs": EPOCHS,
                "temperature": round(temperature, 3),
                "float_fresh": fresh,
            },
            indent=2,
        )
    )
    print(f"wrote {WEIGHTS.relative_to(HERE)} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
