"""Train the scene CNN (seed 000, S53) on traces from generate.py.

Input, convolution, pooling, fully connected, softmax; labelled traces split 8:2
into train and test; a training round is EPOCHS epochs from fresh weights, and
rounds repeat until the final test accuracy reaches 98 % (at most MAX_ROUNDS;
the run fails if none does). Everything is seeded.

Writes work/scene_fp32.pt (weights) and work/train_metrics.json; export.py turns
the weights into the shipped int8 models. Run via `make -C models scene`.
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

import generate  # noqa: E402

from edgecall.inference.scene_features import CHANNELS, WINDOW_S, batch_features  # noqa: E402
from edgecall.rules.scene import SCENES  # noqa: E402

SEED = 20261121
PER_SCENE = 2000  # 10000 traces, 8000 train / 2000 test
TEST_FRACTION = 0.2
TARGET_ACCURACY = 0.98
EPOCHS = 14  # one training round, learning rate decayed to nearly 0
MAX_ROUNDS = 3  # "retrained until test accuracy reaches 98 %", but not forever
BATCH = 64
WORK = HERE / "work"
WEIGHTS = WORK / "scene_fp32.pt"
TRAIN_METRICS = WORK / "train_metrics.json"


class SceneCNN(nn.Module):
    """Three conv+pool blocks (5 s, 25 s, 150 s receptive scale), then fully connected."""

    def __init__(self, n_classes: int = len(SCENES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(CHANNELS, 16, 5, padding=2),
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


def dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features and labels of the seeded 8:2 split: (x_train, y_train, x_test, y_test)."""
    if generate.SCENE_NAMES != SCENES:
        raise SystemExit(f"generator scenes {generate.SCENE_NAMES} != runtime scenes {SCENES}")
    traces, labels = generate.generate_dataset(PER_SCENE, SEED, SCENES)
    x = batch_features(traces)
    order = np.random.default_rng(SEED + 1).permutation(len(x))
    n_test = int(round(len(x) * TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return x[train], labels[train], x[test], labels[test]


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    m = np.zeros((len(SCENES), len(SCENES)), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def format_confusion(m: np.ndarray) -> str:
    """Rows: true scene, columns: predicted scene."""
    w = max(len(s) for s in SCENES) + 1
    lines = ["true\\pred".ljust(w) + "".join(s[:8].rjust(9) for s in SCENES)]
    for name, row in zip(SCENES, m, strict=True):
        lines.append(name.ljust(w) + "".join(str(v).rjust(9) for v in row))
    return "\n".join(lines)


def predict(net: nn.Module, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).argmax(1).numpy()


def train_round(
    round_no: int, xt: torch.Tensor, yt: torch.Tensor, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[nn.Module, float]:
    """One training run from fresh weights: EPOCHS epochs, cosine-decayed learning rate."""
    torch.manual_seed(SEED + round_no)
    net = SceneCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=2e-5)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED + round_no)
    acc = 0.0
    for epoch in range(1, EPOCHS + 1):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        acc = float((predict(net, x_test) == y_test).mean())
        print(f"round {round_no} epoch {epoch:2d}  loss {total / len(xt):.4f}  test acc {acc:.4f}")
    return net, acc


def main() -> int:
    torch.set_num_threads(2)
    t0 = time.monotonic()
    x_train, y_train, x_test, y_test = dataset()
    print(f"data: {len(x_train)} train / {len(x_test)} test traces ({time.monotonic() - t0:.1f} s)")
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for round_no in range(1, MAX_ROUNDS + 1):
        net, acc = train_round(round_no, xt, yt, x_test, y_test)
        if acc >= TARGET_ACCURACY:
            break
        print(f"round {round_no}: test accuracy {acc:.4f} < {TARGET_ACCURACY}, training again")
    else:
        print(f"FAILED: test accuracy {acc:.4f} < {TARGET_ACCURACY} after {MAX_ROUNDS} rounds")
        return 1
    cm = confusion(y_test, predict(net, x_test))
    print(f"round {round_no}: held-out accuracy {acc:.4f} (target {TARGET_ACCURACY})")
    print(format_confusion(cm))
    WORK.mkdir(exist_ok=True)
    torch.save(net.state_dict(), WEIGHTS)
    TRAIN_METRICS.write_text(
        json.dumps(
            {
                "seed": SEED,
                "traces": {"train": len(x_train), "test": len(x_test)},
                "rounds": round_no,
                "epochs_per_round": EPOCHS,
                "float_test_accuracy": round(acc, 4),
                "confusion": cm.tolist(),
            },
            indent=2,
        )
    )
    print(f"wrote {WEIGHTS.relative_to(HERE)} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
