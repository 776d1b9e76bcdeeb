"""Measure smart-turn on finished vs cut-off speech, as the model card reports it.

    .venv/bin/python models/smart-turn/evaluate.py [--write] [--quick]

Finished turn: a whole sentence up to where silero VAD last hears speech. Unfinished
turn: the same recording cut where the VAD sees a pause (>= 2 windows of 32 ms below
0.35) between 30 % and 80 % of the speech, or, without such a pause, at its quietest
32 ms window between 40 % and 70 %. Each example then gets 200 ms (and 500 ms) of
digital silence, the pause after which the endpointer would ask the model.

Sets: English sentences spoken by espeak-ng (models/whisper/eval_sentences.txt),
English sentences with a filler ("um", "uh") and Mandarin ones, also by espeak-ng;
the real Mandarin/English recordings of ../shared/datasets/zh-en-speech (8k.wav left
out: it is 8 kHz at source and its transcript ends mid-sentence); as real-speech
controls, the 79 neutral Emo-DB sentences (German, 10 actors), the 8 RAVDESS clips
(English, actors) and the 27 pytest-audioeval clips (neural TTS, 9 languages) if
installed. Every set is scored at 16 kHz and after the G.711 telephone band
(tests/harness/audio.py), upsampled to 16 kHz the way the ASR path does. `--write`
stores the figures in manifest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from itertools import product
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "daemon"), str(REPO)]

from edgecall.inference.asr import VAD_WINDOW, SileroVad, _Upsample2x, default_vad_model  # noqa: E402
from edgecall.inference.turn import SAMPLE_RATE, WINDOW_SAMPLES, TurnDetector, log_mel  # noqa: E402
from tests.harness.audio import convert_audio  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"
SILENCES_MS = (200, 500)
THRESHOLD = 0.5
POOLS = {  # operating points are reported per kind of speech, not per small set
    "real_speech": ("zh-real", "de-emodb", "en-ravdess"),
    "tts": ("en-espeak", "zh-espeak", "multi-audioeval"),
    "tts_filler": ("en-espeak-filler",),
}
ZH_SENTENCES = [  # espeak-ng cmn; call-centre topics, one clause or more each
    "我想查询一下我的话费账单。",
    "请问你们的营业时间是几点到几点？",
    "我的网络从昨天晚上开始就一直断线。",
    "麻烦你帮我取消这个套餐，谢谢。",
    "我上个月的快递到现在还没有收到。",
    "你好，我想修改一下我的收货地址。",
    "这个问题我已经打了三次电话了。",
    "请帮我转接人工客服。",
    "我的密码忘记了，能不能帮我重置一下？",
    "好的，那我明天上午再打过来。",
    "为什么这个月的费用比上个月高这么多？",
    "我想办理一张新的银行卡。",
]
EN_FILLER_SENTENCES = [  # a hesitation where the VAD sees a pause: the model's main cue
    "I would like to, um, cancel my subscription.",
    "My account number is, uh, four five six seven.",
    "I called you yesterday, and, um, nobody answered.",
    "Can you, uh, check my last payment?",
    "The problem is, um, my router keeps restarting.",
    "I want to, uh, change my address.",
    "We moved in, um, last month.",
    "Could you, um, send me the invoice again?",
]


def english_sentences() -> list[str]:
    lines = (REPO / "models" / "whisper" / "eval_sentences.txt").read_text(encoding="utf-8")
    return [ln for ln in lines.splitlines() if ln.strip() and not ln.startswith("#")]


def as_16k(wav: Path, tmp: Path, telephone: bool) -> np.ndarray:
    """`wav` at 16 kHz float32, or through the 8 kHz G.711 band and back up to 16 kHz."""
    out = convert_audio(wav, tmp / f"band{int(telephone)}.wav", telephone)
    audio, rate = sf.read(str(out), dtype="float32")
    return _Upsample2x()(audio) if rate == 8000 else audio


def espeak(text: str, voice: str, tmp: Path) -> Path:
    raw = tmp / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True)
    return raw


def examples(audio: np.ndarray, vad: SileroVad) -> list[tuple[int, np.ndarray]]:
    """(label, audio ending at the decision point): 1 = whole sentence, 0 = cut at a pause."""
    vad.reset()
    probs = vad(audio)
    speech = np.nonzero(probs >= 0.5)[0]
    if speech.size == 0:
        return []
    first, last = int(speech[0]), int(speech[-1])
    out = [(1, audio[: (last + 1) * VAD_WINDOW])]
    span = last + 1 - first
    quiet = probs < 0.35
    cuts = [
        w
        for w in range(first + 1, last)
        if quiet[w] and quiet[w + 1] and not quiet[w - 1]
        and 0.3 <= (w - first) / span <= 0.8
    ]  # fmt: skip
    lo, hi = first + int(0.4 * span), first + int(0.7 * span)
    if not cuts and hi > lo:
        frames = audio[: (last + 1) * VAD_WINDOW].reshape(-1, VAD_WINDOW)
        cuts = [lo + int(np.argmin((frames[lo:hi] ** 2).mean(axis=1)))]
    out += [(0, audio[: w * VAD_WINDOW]) for w in cuts]
    return out


def sources(tmp: Path, quick: bool) -> dict[str, list[Path]]:
    """Recordings per set, synthesised into `tmp` where needed."""
    sets: dict[str, list[Path]] = {}
    for name, voice, texts in (
        ("en-espeak", "en-us", english_sentences()),
        ("en-espeak-filler", "en-us", EN_FILLER_SENTENCES),
        ("zh-espeak", "cmn", ZH_SENTENCES),
    ):
        sets[name] = []
        for i, text in enumerate(texts[:4] if quick else texts):
            wav = tmp / f"{name}-{i}.wav"
            espeak(text, voice, tmp).rename(wav)
            sets[name].append(wav)
    sets["zh-real"] = sorted((DATASETS / "zh-en-speech").glob("[0-9].wav"))
    emodb = sorted((DATASETS / "emodb" / "wav").glob("*N*.wav"))
    sets["de-emodb"] = emodb[:8] if quick else emodb
    sets["en-ravdess"] = sorted((DATASETS / "ravdess-sample").glob("*.wav"))
    spec = find_spec("pytest_audioeval")
    if spec and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio"
        sets["multi-audioeval"] = sorted(root.glob("*/*.wav"))
    return sets


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a finished turn scores above an unfinished one), ties counted half."""
    if not (pos.size and neg.size):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    return float(greater + 0.5 * (pos[:, None] == neg[None, :]).mean())


def summarise(labels: np.ndarray, probs: np.ndarray) -> dict:
    pos, neg = probs[labels == 1], probs[labels == 0]
    pred = probs >= THRESHOLD
    return {
        "finished": int(pos.size),
        "unfinished": int(neg.size),
        "accuracy": round(float((pred == (labels == 1)).mean()), 3),
        "finished_recall": round(float((pos >= THRESHOLD).mean()), 3),
        "unfinished_recall": round(float((neg < THRESHOLD).mean()), 3),
        "roc_auc": round(roc_auc(pos, neg), 3),
    }


def operating_points(labels: np.ndarray, probs: np.ndarray) -> dict:
    """[finished, unfinished] shares at or above each threshold: early ends vs wrong cuts."""
    pos, neg = probs[labels == 1], probs[labels == 0]
    return {
        f"{t:.2f}": [round(float((pos >= t).mean()), 3), round(float((neg >= t).mean()), 3)]
        for t in (0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98)
    }


def latency(det: TurnDetector, runs: int = 100) -> dict:
    """ms per `probability` call on 8 s of audio (features + ONNX), one thread."""
    x = (np.random.default_rng(0).standard_normal(WINDOW_SAMPLES) * 0.1).astype(np.float32)
    for _ in range(3):
        det.probability(x)
    feats, total = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        log_mel(x)
        t1 = time.perf_counter()
        det.probability(x)
        total.append(time.perf_counter() - t1)
        feats.append(t1 - t0)
    ms = 1000 * np.array(total)
    return {
        "threads": 1,
        "features_ms_median": round(1000 * float(np.median(feats)), 1),
        "call_ms_min": round(float(ms.min()), 1),
        "call_ms_median": round(float(np.median(ms)), 1),
        "call_ms_p90": round(float(np.percentile(ms, 90)), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def evaluate(quick: bool) -> dict:
    det = TurnDetector(HERE, threads=1)
    vad = SileroVad(default_vad_model())
    rows: dict[tuple[str, str, int], tuple[list[int], list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name, wavs in sources(tmp, quick).items():
            for wav in wavs:
                for band, telephone in (("16k", False), ("8k_g711", True)):
                    for label, audio in examples(as_16k(wav, tmp, telephone), vad):
                        for ms in SILENCES_MS:
                            pad = np.zeros(ms * SAMPLE_RATE // 1000, dtype=np.float32)
                            p = det.probability(np.concatenate([audio, pad]))
                            labels, probs = rows.setdefault((name, band, ms), ([], []))
                            labels.append(label)
                            probs.append(p)
            print(f"{name}: {len(wavs)} recordings", flush=True)
    metrics: dict = {"sets": {}, "operating_points": {}}
    for (name, band, ms), (labels, probs) in sorted(rows.items()):
        key = f"{name}/{band}/{ms}ms"
        metrics["sets"][key] = summarise(np.array(labels), np.array(probs))
        print(key, metrics["sets"][key])
    for (pool, names), band, ms in product(POOLS.items(), ("16k", "8k_g711"), SILENCES_MS):
        parts = [rows[(n, band, ms)] for n in names if (n, band, ms) in rows]
        if parts:
            labels = np.concatenate([np.array(lab) for lab, _ in parts])
            probs = np.concatenate([np.array(pr) for _, pr in parts])
            key = f"{pool}/{band}/{ms}ms"
            metrics["operating_points"][key] = operating_points(labels, probs)
            print(key, metrics["operating_points"][key])
    metrics["latency"] = latency(det)
    print("latency", metrics["latency"])
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="store figures in manifest.json")
    parser.add_argument("--quick", action="store_true", help="a few recordings per set")
    args = parser.parse_args()
    metrics = evaluate(args.quick)
    if args.write:
        path = HERE / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["metrics"] = metrics
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
