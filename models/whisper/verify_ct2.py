"""Check the PyTorch rebuild against the CTranslate2 runtime on spoken sentences.

    .venv-train/bin/python models/whisper/verify_ct2.py [tiny-en|base]

Needs `ctranslate2` in the training env (dev-only, 4.8.5 used) and the inputs
`convert.py` extracted into work/<model>/. For each sentence of
eval_sentences.txt (espeak-ng, 16 kHz) it compares the encoder output of both
implementations and their greedy transcripts (Whisper's own 30 s front end).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import ct2_model
import ctranslate2
import numpy as np
import soundfile as sf
import torch
from vocab import Vocabulary
from whisper_net import Decoder, Encoder

from edgecall.inference.whisper_features import log_mel  # the runtime's own front end

HERE = Path(__file__).resolve().parent


@torch.no_grad()
def greedy(enc: Encoder, dec: Decoder, mel: np.ndarray, prompt: list[int], eot: int) -> list[int]:
    cross_k, cross_v = enc(torch.from_numpy(mel))
    d = dec.dims
    k = torch.zeros(d.n_text_layer, 1, d.n_text_ctx, d.n_text_state)
    v = torch.zeros_like(k)
    tokens, out = torch.tensor([prompt]), []
    for offset in range(len(prompt), d.n_text_ctx // 2):
        logits, k, v = dec(tokens, k, v, cross_k, cross_v, torch.tensor([offset - tokens.shape[1]]))
        nxt = int(logits[0, -1].argmax())
        if nxt == eot:
            break
        out.append(nxt)
        tokens = torch.tensor([[nxt]])
    return out


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "tiny-en"
    work = HERE / "work" / name
    m = ct2_model.load(work / "model.bin")
    voc = Vocabulary.load(work / "vocabulary.txt", None)
    prompt = [voc.sot]
    if m.dims.n_vocab >= 51865:
        prompt += [voc.id_of("<|en|>"), voc.id_of("<|transcribe|>")]
    prompt.append(voc.id_of("<|notimestamps|>"))
    ref_dir = Path(tempfile.mkdtemp())
    for f in ("model.bin", "vocabulary.txt", "config.json"):
        (ref_dir / f).symlink_to(work / f)
    ref = ctranslate2.models.Whisper(str(ref_dir), device="cpu", compute_type="float32")
    enc, dec = Encoder(m).eval(), Decoder(m).eval()
    lines = (HERE / "eval_sentences.txt").read_text().splitlines()
    same, worst = 0, 0.0
    sentences = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    for text in sentences:
        wav = ref_dir / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(ref_dir / "r.wav"), text], check=True)
        subprocess.run(["sox", "-D", str(ref_dir / "r.wav"), "-r", "16000", str(wav)], check=True)
        mel = log_mel(sf.read(str(wav), dtype="float32")[0], n_mels=m.dims.n_mels)[None]
        ref_feats = np.array(ref.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))
        with torch.no_grad():
            ours = enc.audio_features(torch.from_numpy(mel)).numpy()
        worst = max(worst, float(np.abs(ours - ref_feats).max()))
        ref_ids = ref.generate(ctranslate2.StorageView.from_array(mel), [prompt], beam_size=1)
        ref_text = voc.decode(ref_ids[0].sequences_ids[0])
        our_text = voc.decode(greedy(enc, dec, mel, prompt, voc.eot))
        same += ref_text == our_text
        if ref_text != our_text:
            print(f"differs: {ref_text!r} vs {our_text!r}")
    print(
        f"{name}: encoder max abs diff {worst:.2e}; identical transcripts {same}/{len(sentences)}"
    )
    return 0 if same == len(sentences) else 1


if __name__ == "__main__":
    sys.exit(main())
