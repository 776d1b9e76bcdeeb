"""Audio between a call and Python: caller frames out to asyncio, prompts in from WAV.

`FramePort.onFrameReceived` runs on pjmedia's clock thread for every 20 ms frame
of every call, holding the GIL: it only copies the bytes and hands them to the
event loop. Everything else (queueing, drop counting, barge-in detection)
happens in `AudioSink` on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable

import numpy as np
import pjsua2 as pj

SAMPLE_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2


def _vector_bytes_slow(vec: pj.ByteVector) -> bytes:
    return bytes(vec)


def _vector_bytes_fast(vec: pj.ByteVector) -> bytes:
    # SWIG wraps a libstdc++ std::vector<unsigned char>: its first two words are the
    # begin and end pointers. Copying through them costs ~2 us instead of ~300 us
    # for bytes(vec), which iterates element by element under the GIL.
    addr = int(vec.this)
    begin = ctypes.c_void_p.from_address(addr).value
    end = ctypes.c_void_p.from_address(addr + ctypes.sizeof(ctypes.c_void_p)).value
    if not begin or not end or end < begin:
        return b""
    return ctypes.string_at(begin, end - begin)


def _pick_vector_bytes() -> Callable[[pj.ByteVector], bytes]:
    probe = pj.ByteVector(list(range(256)) * 3)
    try:
        if _vector_bytes_fast(probe) == _vector_bytes_slow(probe):
            return _vector_bytes_fast
    except (TypeError, ValueError, OSError):
        pass
    return _vector_bytes_slow


vector_bytes = _pick_vector_bytes()


def frame_format() -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.type = pj.PJMEDIA_TYPE_AUDIO
    fmt.clockRate = SAMPLE_RATE
    fmt.channelCount = 1
    fmt.bitsPerSample = 16
    fmt.frameTimeUsec = FRAME_MS * 1000
    return fmt


class _NativeHalfFirst:
    """Deletes the C++ half of a pjsua2 director object while its Python half is whole.

    pjsua2 calls back into these objects from its own threads: `FramePort.onFrameReceived`
    from pjmedia's clock thread every 20 ms for as long as the port is in the conference
    bridge (a port nothing transmits to still gets a NONE frame each tick), and
    `PromptPlayer.onEof2` from pjmedia's event thread. What stops those calls is the C++
    destructor (~AudioMediaPort clears the port's callback target under the port's lock,
    the player's unsubscribes it from the event thread; both wait for a callback in
    progress), and SWIG's delete releases the GIL while it runs. Left to SWIG's default,
    that delete only starts once CPython is already deallocating the Python object
    (refcount 0, attributes going), so a callback that was waiting for the GIL runs on
    the half-freed object, takes and drops a reference and frees it a second time.
    pymalloc's free lists are then corrupt and the process dies later in some unrelated
    allocation: the SIGSEGVs after a local hang-up and at endpoint stop, with the PyPI
    wheel as with our build. `__del__` runs before any of that teardown, so a callback
    that slips in during the delete still finds a live object, and none can come after
    it. Like the default deallocation, this must run on a thread pjlib knows (the SIP
    thread).
    """

    def __del__(self) -> None:
        try:
            owned = self.thisown  # type: ignore[attr-defined]
        except AttributeError:  # __init__ never reached SWIG: there is no C++ object
            return
        if owned:  # disowns it, so SWIG's dealloc will not delete it again
            type(self).__swig_destroy__(self)  # type: ignore[attr-defined]


class FramePort(_NativeHalfFirst, pj.AudioMediaPort):
    """Conference port receiving the caller's audio; forwards each frame to the loop."""

    def __init__(self, deliver: Callable[[bytes], None], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._deliver = deliver
        self._call_soon = loop.call_soon_threadsafe

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 - pjsua2 API
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            try:  # noqa: SIM105 - hot path, 50 times a second per call
                self._call_soon(self._deliver, vector_bytes(frame.buf))
            except RuntimeError:  # loop closed while the call is ending
                pass


class PromptPlayer(_NativeHalfFirst, pj.AudioMediaPlayer):
    """A WAV prompt; reports its end of file to the pj thread (never acts in the callback)."""

    def __init__(self, on_eof: Callable[[], None]) -> None:
        super().__init__()
        self._on_eof = on_eof

    def onEof2(self) -> None:  # noqa: N802 - pjsua2 API
        self._on_eof()


class AudioSink:
    """Event-loop side of one call's audio: bounded queue, drop count, barge-in detector.

    The queue holds 640-byte frames (16 kHz int16 mono, 20 ms) and finally None when
    the call has ended. When it is full the oldest frame is dropped and counted, so
    a slow consumer loses history, not the present.
    """

    def __init__(
        self, maxsize: int, on_barge_in: Callable[[], None], level_dbfs: float, min_ms: int
    ) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=maxsize)
        self.received = 0
        self.dropped = 0
        self.last_frame = 0.0
        self.closed = False
        self._on_barge_in = on_barge_in
        self._threshold = (10 ** (level_dbfs / 20.0) * 32768.0) ** 2
        self._need = max(1, min_ms // FRAME_MS)
        self._run = 0
        self._armed = False

    def arm_barge_in(self, armed: bool) -> None:
        self._armed = armed
        self._run = 0

    def deliver(self, frame: bytes) -> None:
        if self.closed:
            return
        self.received += 1
        self.last_frame = time.monotonic()
        self._put(frame)
        if self._armed:
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
            power = float(np.dot(samples, samples)) / max(1, samples.size)
            # a quiet frame inside speech (a stop consonant, a short gap) counts down
            # instead of starting over, so onset is seen within min_ms of speech
            self._run = self._run + 1 if power >= self._threshold else max(0, self._run - 1)
            if self._run >= self._need:
                self._armed = False
                self._on_barge_in()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._armed = False
            self._put(None)

    def _put(self, item: bytes | None) -> None:
        if self.queue.full():
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except asyncio.QueueEmpty:
                pass
        self.queue.put_nowait(item)
