"""ASR kind whisper_ct2: the pinned CT2 Whisper files decoded by CTranslate2.

The files are extracted by `make asr-ct2` (a prerequisite of `make test`). English speech
is espeak-ng's, Chinese the real recordings of ../shared/datasets/zh-en-speech; the
figures of the model cards come from tests/bench/bench_asr_runtime.py, the bounds here
are generous on purpose.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from edgecall.config.models import AsrModelConfig
from edgecall.inference import ct2_whisper
from edgecall.inference.asr import UtteranceRecognizer, load_engine
from edgecall.inference.asr_metrics import cer, normalize
from edgecall.inference.chinese_script import to_script
from edgecall.inference.manifest import ModelFileError
from tests.harness.audio import make_wav

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "models" / "whisper-tiny-en-ct2"
BASE = REPO / "models" / "whisper-base-ct2"
ZH_REFERENCES = json.loads(
    (REPO / "models" / "whisper" / "zh_en_speech_references.json").read_text(encoding="utf-8")
)["references"]

pytestmark = pytest.mark.skipif(
    not all((d / ".extracted").is_file() for d in (TINY, BASE)),
    reason="CT2 Whisper files not extracted: make asr-ct2",
)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory) -> np.ndarray:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox (Debian packages) synthesise the English test speech")
    wav = make_wav(tmp_path_factory.mktemp("ct2") / "s.wav", "Please call me back tomorrow.")
    audio, rate = sf.read(str(wav), dtype="int16")
    return np.concatenate([np.zeros(8000, np.int16), audio, np.zeros(16000, np.int16)])


@pytest.mark.parametrize("beam_size", [1, 5], ids=["greedy", "beam5"])
def test_english_sentence_is_heard_greedy_and_with_beam(sentence, beam_size):
    rec = UtteranceRecognizer(TINY, kind="whisper_ct2", language="en", beam_size=beam_size)
    heard = rec.transcribe(sentence)
    assert len(heard) == 1 and heard[0].language == "en"
    assert normalize(heard[0].text) == "please call me back tomorrow"
    assert 0.3 < heard[0].start_s < heard[0].end_s < sentence.size / 16000


@pytest.mark.parametrize("beam_size", [1, 5], ids=["greedy", "beam5"])
def test_mandarin_of_real_speech_in_the_forced_language(shared_dir, beam_size):
    engine = load_engine(BASE, kind="whisper_ct2", language="zh", beam_size=beam_size)
    hyps = []
    for name in ZH_REFERENCES:
        audio, rate = sf.read(str(shared_dir / "datasets" / "zh-en-speech" / name), dtype="int16")
        rec = UtteranceRecognizer(BASE, kind="whisper_ct2", language="zh", engine=engine)
        hyps.append(" ".join(u.text for u in rec.transcribe(audio, rate)))
    assert cer(list(ZH_REFERENCES.values()), hyps) <= 0.5  # measured 0.36-0.40 (model card)
    said = dict(zip(ZH_REFERENCES, hyps, strict=True))
    # Chinese in the configured script, English words inside Chinese speech kept English
    assert (
        "一般现在时" in said["8k.wav"] and to_script(said["8k.wav"], "simplified") == said["8k.wav"]
    )
    assert "always" in said["1.wav"].lower()


def test_a_looping_transcript_is_decoded_again_on_the_full_window(sentence, monkeypatch):
    engine = load_engine(TINY, kind="whisper_ct2", language="en")
    seen: list[int] = []

    def first_loops(ids: list[int], cap: int) -> bool:
        seen.append(cap)
        return len(seen) == 1  # the short decode "looped"; the full window did not

    monkeypatch.setattr(ct2_whisper, "loops", first_loops)
    rec = UtteranceRecognizer(TINY, kind="whisper_ct2", language="en", engine=engine)
    (heard,) = rec.transcribe(sentence)
    assert engine.decodes == 2 and len(seen) == 1
    assert normalize(heard.text) == "please call me back tomorrow"


@pytest.mark.parametrize(
    ("ids", "looping"),
    [
        ([1, 2, 3, 4, 5, 6], False),
        ([7, 7, 7, 7, 7, 7, 7], False),  # "no no no no no no no": 7 tokens, still speech
        ([7] * 9, True),
        ([1, 2, 3] + [4, 5] * 4 + [6], True),  # a two-token phrase four times, off the start
        ([9, 4, 5, 6, 4, 5, 6, 4, 5, 6], True),
        ([4, 5, 6, 4, 5, 6, 1], False),  # said twice
        (list(range(30)), True),  # the length cap
    ],
)
def test_loops_are_repeats_or_the_length_cap(ids, looping):
    assert ct2_whisper.loops(ids, cap=30) is looping


def _copy(model: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("manifest.json", "vocabulary.txt", "config.json"):
        shutil.copy(model / name, to / name)
    (to / "model.bin").symlink_to(model / "model.bin")
    return to


def test_a_missing_or_corrupt_file_is_named_with_the_reason(tmp_path):
    bad = _copy(TINY, tmp_path / "bad")
    (bad / "vocabulary.txt").unlink()
    with pytest.raises(ModelFileError, match=r"vocabulary\.txt: model file missing"):
        load_engine(bad, kind="whisper_ct2", language="en")
    shutil.copy(TINY / "vocabulary.txt", bad / "vocabulary.txt")
    (bad / "model.bin").unlink()
    (bad / "model.bin").write_bytes((TINY / "model.bin").read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"model\.bin: 1000 bytes, manifest says \d+"):
        load_engine(bad, kind="whisper_ct2", language="en")
    data = bytearray((TINY / "config.json").read_bytes())
    data[-2] ^= 1
    (bad / "config.json").write_bytes(bytes(data))
    shutil.copy(TINY / "model.bin", bad / "model.bin")
    with pytest.raises(ModelFileError, match=r"config\.json: sha256 .* does not match"):
        load_engine(bad, kind="whisper_ct2", language="en")


def test_the_language_is_checked_against_the_manifest():
    with pytest.raises(ModelFileError, match="transcribes en, not 'zh'"):
        load_engine(TINY, kind="whisper_ct2", language="zh")


def test_beam_search_is_a_ct2_setting():
    cfg = AsrModelConfig(kind="whisper_ct2", dir=BASE, languages=["zh"], beam_size=5)
    assert cfg.beam_size == 5
    with pytest.raises(ValidationError, match="decodes greedily"):
        AsrModelConfig(kind="whisper", dir=BASE, languages=["zh"], beam_size=5)
