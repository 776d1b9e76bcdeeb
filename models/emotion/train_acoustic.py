"""Train, evaluate and export the acoustic emotion model (Emo-DB -> three tendencies).

Run from the training environment (torch CPU, onnx, onnxruntime):

    make -C models/emotion acoustic

Steps: features for every Emo-DB file (clean + 3 random telephone channels for
training, 1 fixed telephone channel for evaluation) cached in `work/`; 5
leave-two-speakers-out folds (accuracy, macro-F1, clean and telephone); the shipped
model is the fold that holds out speakers 15 and 16, so the test suite can check
the committed file on speakers it never saw; ONNX export, int8 dynamic
quantization, LiteRT .tflite with int8 weights, RAVDESS cross-corpus check;
manifest and metrics update.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from emotion_manifest import update
from telephone_channel import eval_channel, random_telephone

from edgecall.inference import emotion_features as ef

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
DATA = Path(os.environ.get("EDGECALL_DATASETS", HERE.parents[2] / "shared" / "datasets"))
EMODB = DATA / "emodb" / "wav"
RAVDESS = DATA / "ravdess-sample"

LABELS = ("negative", "neutral", "positive")
# Emo-DB emotion letter (from the file name) -> tendency index into LABELS
EMODB_MAP = {"W": 0, "E": 0, "A": 0, "T": 0, "N": 1, "L": 1, "F": 2}
# RAVDESS emotion code (third field) -> tendency; 08 surprised has no Emo-DB counterpart
RAVDESS_MAP = {"01": 1, "02": 1, "03": 2, "04": 0, "05": 0, "06": 0, "07": 0}
FOLDS = (("03", "08"), ("09", "10"), ("11", "13"), ("12", "14"), ("15", "16"))
HOLDOUT = ("15", "16")
N_AUG = 3
SEED = 20261121  # also the evaluation channel seed in telephone_channel.py


def load_16k(path: Path) -> np.ndarray:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return ef.resample(audio.mean(axis=1), sr, ef.SAMPLE_RATE)


def _file_features(args: tuple[int, str]) -> np.ndarray:
    index, path = args
    x = load_16k(Path(path))
    rng = np.random.default_rng([SEED, 0, index])
    variants = [x] + [random_telephone(x, rng) for _ in range(N_AUG)] + [eval_channel(x, index)]
    return np.stack([ef.extract(v).vector for v in variants])


def emodb_table() -> tuple[list[Path], np.ndarray, np.ndarray]:
    files = sorted(EMODB.glob("*.wav"))
    if len(files) != 535:
        raise SystemExit(f"{EMODB}: expected 535 Emo-DB files, found {len(files)}")
    speakers = np.array([f.name[:2] for f in files])
    labels = np.array([EMODB_MAP[f.name[5]] for f in files])
    return files, speakers, labels


def features(files: list[Path], workers: int) -> np.ndarray:
    """(files, 1 + N_AUG + 1, N_FEATURES): clean, training channels, evaluation channel."""
    cache = WORK / f"emodb_features_v{ef.FEATURE_VERSION}_aug{N_AUG}.npy"
    if cache.exists():
        return np.load(cache)
    WORK.mkdir(exist_ok=True)
    t0 = time.time()
    jobs = [(i, str(f)) for i, f in enumerate(files)]
    with ProcessPoolExecutor(workers) as pool:
        feats = np.stack(list(pool.map(_file_features, jobs, chunksize=8)))
    print(f"features: {len(files)} files x {feats.shape[1]} variants in {time.time() - t0:.0f} s")
    np.save(cache, feats)
    return feats


def train_mlp(x: np.ndarray, y: np.ndarray, seed: int) -> EmotionMLP:
    torch.manual_seed(seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    model = EmotionMLP(mean, std)
    counts = np.bincount(y, minlength=len(LABELS))
    weights = torch.tensor(len(y) / (len(LABELS) * counts), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    gen = torch.Generator().manual_seed(seed)
    epochs = 60
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=epochs * ((len(y) + 63) // 64)
    )
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), 64):
            idx = order[start : start + 64]
            noisy = xt[idx] + 0.05 * torch.randn(len(idx), x.shape[1], generator=gen) * model.std
            loss = loss_fn(model.logits(noisy), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


class EmotionMLP(torch.nn.Module):
    """Standardisation + MLP + softmax, all inside the exported graph."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(ef.N_FEATURES, 64),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(64, 32),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(32, len(LABELS)),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


def predict(model: EmotionMLP, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(x)).numpy()


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    conf = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    np.add.at(conf, (y, pred), 1)
    f1 = []
    for k in range(len(LABELS)):
        tp = conf[k, k]
        prec = tp / conf[:, k].sum() if conf[:, k].sum() else 0.0
        rec = tp / conf[k].sum() if conf[k].sum() else 0.0
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {
        "n": int(len(y)),
        "accuracy": round(float(np.mean(y == pred)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "confusion": conf.tolist(),
    }


def training_rows(feats: np.ndarray, labels: np.ndarray, mask: np.ndarray):
    x = feats[mask][:, : 1 + N_AUG].reshape(-1, ef.N_FEATURES)
    y = np.repeat(labels[mask], 1 + N_AUG)
    return x, y


def cross_validate(feats: np.ndarray, speakers: np.ndarray, labels: np.ndarray):
    folds = []
    all_y, all_clean, all_phone = [], [], []
    final_model = None
    for i, pair in enumerate(FOLDS):
        test = np.isin(speakers, pair)
        x, y = training_rows(feats, labels, ~test)
        model = train_mlp(x, y, SEED + i)
        clean = predict(model, feats[test][:, 0]).argmax(1)
        phone = predict(model, feats[test][:, -1]).argmax(1)
        yt = labels[test]
        folds.append(
            {
                "speakers": list(pair),
                "clean": scores(yt, clean),
                "telephone": scores(yt, phone),
            }
        )
        c, t = folds[-1]["clean"], folds[-1]["telephone"]
        print(
            f"fold {pair}: clean acc {c['accuracy']:.3f} F1 {c['macro_f1']:.3f} | "
            f"telephone acc {t['accuracy']:.3f} F1 {t['macro_f1']:.3f}"
        )
        all_y.append(yt)
        all_clean.append(clean)
        all_phone.append(phone)
        if pair == HOLDOUT:
            final_model = model
    y = np.concatenate(all_y)
    overall = {
        "clean": scores(y, np.concatenate(all_clean)),
        "telephone": scores(y, np.concatenate(all_phone)),
    }
    majority = scores(y, np.zeros_like(y))
    return folds, overall, majority, final_model


def export(model: EmotionMLP, path_fp32: Path, path_int8: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dummy = torch.zeros(1, ef.N_FEATURES)
    torch.onnx.export(
        model,
        (dummy,),
        str(path_fp32),
        input_names=["features"],
        output_names=["probabilities"],
        dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path_fp32))
    meta = {
        "labels": ",".join(LABELS),
        "feature_version": ef.FEATURE_VERSION,
        "sample_rate": str(ef.SAMPLE_RATE),
        "features": ",".join(ef.FEATURE_NAMES),
    }
    for key, value in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(proto, str(path_fp32))
    quantize_dynamic(str(path_fp32), str(path_int8), weight_type=QuantType.QInt8)


def export_tflite(model: EmotionMLP, path: Path) -> None:
    """LiteRT (.tflite) with int8 weights and dynamic-range activations, for Jetson builds."""
    import litert_torch
    from litert_torch.generative.quantize import quant_recipes

    edge = litert_torch.convert(
        model.eval(),
        (torch.zeros(1, ef.N_FEATURES),),
        quant_config=quant_recipes.full_dynamic_recipe(),
    )
    edge.export(str(path))


def tflite_predict(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for v in x.astype(np.float32):
        interpreter.set_tensor(inp["index"], v[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.array(rows)


def onnx_predict(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"features": x.astype(np.float32)})[0]


def ravdess_check(path: Path) -> dict:
    rows = []
    for wav in sorted(RAVDESS.glob("*.wav")):
        code = wav.name.split("-")[2]
        x = load_16k(wav)
        clean = onnx_predict(path, ef.extract(x).vector[None])[0]
        phone = onnx_predict(path, ef.extract(eval_channel(x, int(code))).vector[None])[0]
        rows.append(
            {
                "file": wav.name,
                "code": code,
                "expected": LABELS[RAVDESS_MAP[code]] if code in RAVDESS_MAP else None,
                "clean": LABELS[int(clean.argmax())],
                "telephone": LABELS[int(phone.argmax())],
                "clean_score": round(float(clean[2] - clean[0]), 3),
            }
        )
    scored = [r for r in rows if r["expected"]]
    return {
        "clips": rows,
        "clean_correct": sum(r["clean"] == r["expected"] for r in scored),
        "telephone_correct": sum(r["telephone"] == r["expected"] for r in scored),
        "scored": len(scored),
    }


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="feature extraction processes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    files, speakers, labels = emodb_table()
    feats = features(files, args.workers)
    folds, overall, majority, model = cross_validate(feats, speakers, labels)
    print(
        f"overall clean {overall['clean']['accuracy']:.3f}/{overall['clean']['macro_f1']:.3f} "
        f"telephone {overall['telephone']['accuracy']:.3f}/{overall['telephone']['macro_f1']:.3f}"
        f" (majority class acc {majority['accuracy']:.3f} F1 {majority['macro_f1']:.3f})"
    )

    fp32, int8 = WORK / "acoustic_fp32.onnx", HERE / "acoustic_int8.onnx"
    export(model, fp32, int8)
    tflite = HERE / "acoustic_int8.tflite"
    export_tflite(model, tflite)
    held = np.isin(speakers, HOLDOUT)
    yh = labels[held]
    shipped = {}
    for name, col in (("clean", 0), ("telephone", -1)):
        p32 = onnx_predict(fp32, feats[held][:, col]).argmax(1)
        p8 = onnx_predict(int8, feats[held][:, col]).argmax(1)
        shipped[name] = scores(yh, p8)
        shipped[name]["int8_fp32_agreement"] = round(float(np.mean(p32 == p8)), 4)
        pt = tflite_predict(tflite, feats[held][:, col]).argmax(1)
        shipped[name]["tflite_accuracy"] = round(float(np.mean(pt == yh)), 4)
        shipped[name]["tflite_onnx_int8_agreement"] = round(float(np.mean(pt == p8)), 4)
    ravdess = ravdess_check(int8)
    print(
        f"shipped int8 on held-out speakers {HOLDOUT}: clean {shipped['clean']['accuracy']:.3f}"
        f" telephone {shipped['telephone']['accuracy']:.3f}; RAVDESS clean "
        f"{ravdess['clean_correct']}/{ravdess['scored']}, telephone "
        f"{ravdess['telephone_correct']}/{ravdess['scored']}"
    )
    metrics = {
        "labels": list(LABELS),
        "protocol": "5 folds of 2 held-out speakers; 'telephone' = band-pass 300-3400 Hz, "
        "8 kHz, G.711 mu-law, noise at 10-30 dB SNR",
        "folds": folds,
        "overall": overall,
        "majority_baseline": {"accuracy": majority["accuracy"], "macro_f1": majority["macro_f1"]},
        "shipped_model": {
            "trained_on_speakers": sorted(set(speakers) - set(HOLDOUT)),
            "held_out_speakers": list(HOLDOUT),
            **shipped,
        },
        "ravdess_sample": ravdess,
        "training_seconds": round(time.time() - t0, 1),
    }
    (WORK / "acoustic_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    source = {
        "dataset": "Berlin Database of Emotional Speech (Emo-DB), Burkhardt et al., "
        "Interspeech 2005, TU Berlin",
        "copy_used": "GitHub sylaschacko/voice-emotion-analysis at commit "
        "4b0f64c947b84beb43c8b1a7e7a6597a04902f02 (535 files, 22,050 Hz)",
        "terms": "research database published by TU Berlin (Institute of Speech and "
        "Communication); freely downloadable, users are asked to cite Burkhardt et al. "
        "2005; no licence text grants commercial use of derived models: see MODEL_CARD.md",
        "feature_version": ef.FEATURE_VERSION,
        "mapping": {
            "negative": "W anger, E disgust, A fear, T sadness",
            "neutral": "N neutral, L boredom",
            "positive": "F happiness",
        },
        "command": "make -C models/emotion acoustic (torch==2.13.0 CPU)",
    }
    update(["acoustic_int8.onnx", "acoustic_int8.tflite"], source, metrics, "acoustic")
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
