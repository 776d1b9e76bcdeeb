"""Debian's libespeak-ng (package libespeak-ng1) through ctypes: phonemes for Piper, and the
espeak-ng fallback voice.

libespeak-ng is GPL-3.0; it is loaded dynamically from the system at run time, never bundled.
The library keeps its voice, parameters and synth callback in process-global state, so there
is one `EspeakNg` per process and every call into it holds one lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import unicodedata
from pathlib import Path

import numpy as np

from edgecall.speech.voice import VoiceError

_MULTIARCH = ("x86_64-linux-gnu", "aarch64-linux-gnu")
_OUTPUT_MODE_SYNCHRONOUS = 1  # espeak_ng_OUTPUT_MODE ENOUTPUT_MODE_SYNCHRONOUS
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02
_POS_CHARACTER = 1
_RATE = 1  # espeak_PARAMETER espeakRATE
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
# After a clause, the closing quotes and brackets before its punctuation do not count.
_CLOSERS = "\"')]}\u2019\u201d\u00bb"
_PUNCTUATION = ".,?!:;"


def find_library() -> Path:
    """libespeak-ng.so.1: where the loader finds it, else Debian's multiarch directories."""
    name = ctypes.util.find_library("espeak-ng")
    candidates = [Path(name)] if name else []
    candidates += [Path("/usr/lib") / arch / "libespeak-ng.so.1" for arch in _MULTIARCH]
    for path in candidates:
        if not path.is_absolute():
            return path  # a soname the dynamic loader resolves itself
        if path.is_file():
            return path
    raise VoiceError("libespeak-ng not found: install the Debian package libespeak-ng1")


def find_data_dir() -> Path:
    """The espeak-ng-data directory (it holds `phontab`): $ESPEAK_DATA_PATH, else Debian's."""
    candidates = []
    if env := os.environ.get("ESPEAK_DATA_PATH"):
        candidates += [Path(env), Path(env) / "espeak-ng-data"]
    candidates += [Path("/usr/lib") / arch / "espeak-ng-data" for arch in _MULTIARCH]
    candidates += [Path("/usr/share/espeak-ng-data"), Path("/usr/local/share/espeak-ng-data")]
    for path in candidates:
        if (path / "phontab").is_file():
            return path
    raise VoiceError("espeak-ng-data not found: install the Debian package espeak-ng-data")


class EspeakNg:
    """The process's libespeak-ng, initialised for synchronous synthesis."""

    def __init__(self, library: Path, data_dir: Path) -> None:
        try:
            lib = ctypes.CDLL(str(library))
        except OSError as exc:
            raise VoiceError(f"{library}: cannot load libespeak-ng: {exc}") from None
        lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_Initialize.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.espeak_ng_InitializeOutput.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
        lib.espeak_ng_ClearErrorContext.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.espeak_ng_GetStatusCodeMessage.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._lib = lib
        self._lock = threading.Lock()
        self._voice: str | None = None
        self._chunks: list[np.ndarray] = []
        # What espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0) does, minus its exit(1)
        # on bad data, which would end the worker process instead of raising VoiceError.
        lib.espeak_ng_InitializePath(str(data_dir).encode())
        context = ctypes.c_void_p()
        status = lib.espeak_ng_Initialize(ctypes.byref(context))
        lib.espeak_ng_ClearErrorContext(ctypes.byref(context))
        if status == 0:
            status = lib.espeak_ng_InitializeOutput(_OUTPUT_MODE_SYNCHRONOUS, 0, None)
        if status != 0:
            message = ctypes.create_string_buffer(512)
            lib.espeak_ng_GetStatusCodeMessage(status, message, len(message))
            raise VoiceError(f"{data_dir}: libespeak-ng: {message.value.decode(errors='replace')}")
        self.sample_rate: int = lib.espeak_ng_GetSampleRate()
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes._Pointer, count: int, _events: int) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        return 0  # 0: carry on synthesizing

    def _set_voice(self, voice: str) -> None:
        """Switch voices only when needed: loading a dictionary (cmn: 1.6 MB) is not free."""
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                self._voice = None  # whatever is loaded now, set it again next time
                raise VoiceError(f"espeak-ng has no voice {voice!r}")
            self._voice = voice

    def phonemize(self, text: str, voice: str) -> list[tuple[str, str]]:
        """(IPA, terminator) per clause, as espeak-ng splits the text. The terminator is the
        clause's closing punctuation (. , ? ! : ;) or "", read from the text espeak-ng moved
        its pointer over: Debian's 1.51 lacks espeak_TextToPhonemesWithTerminator."""
        data = text.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        base = ctypes.addressof(buf)
        ptr = ctypes.c_void_p(base)
        clauses = []
        with self._lock:
            self._set_voice(voice)
            while ptr.value is not None:
                start = ptr.value - base
                ipa = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA)
                end = len(data) if ptr.value is None else ptr.value - base
                chunk = data[start:end].decode("utf-8", "replace").rstrip()
                if ptr.value is not None and chunk and chunk[-1] not in _PUNCTUATION:
                    chunk = chunk[:-1]  # espeak-ng has read one character of the next clause
                chunk = chunk.rstrip().rstrip(_CLOSERS)
                terminator = chunk[-1] if chunk and chunk[-1] in _PUNCTUATION else ""
                phonemes = unicodedata.normalize("NFD", (ipa or b"").decode("utf-8", "replace"))
                clauses.append((phonemes.strip(), terminator))
        return clauses

    def synthesize(self, text: str, voice: str, rate_wpm: int | None = None) -> np.ndarray:
        """float32 samples at `sample_rate` of espeak-ng's own formant synthesis."""
        with self._lock:
            self._set_voice(voice)
            if rate_wpm is not None:
                self._lib.espeak_SetParameter(_RATE, rate_wpm, 0)
            self._chunks = []
            data = text.encode("utf-8")
            status = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise VoiceError(f"espeak-ng synthesis failed ({status})")
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


_INSTANCE: list[EspeakNg] = []
_INIT_LOCK = threading.Lock()


def espeak_ng() -> EspeakNg:
    """The one libespeak-ng of this process (found and initialised on first use)."""
    with _INIT_LOCK:
        if not _INSTANCE:
            _INSTANCE.append(EspeakNg(find_library(), find_data_dir()))
        return _INSTANCE[0]
