"""Audio devices through sounddevice: listing, choosing, playing, recording — and one readable line
for every way that fails (no PortAudio, no device, a device that vanished).

sounddevice is imported lazily: a machine without PortAudio still runs the app, text-only.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

INSTALL_HINT = "install `presence[voice]` (and the PortAudio library, e.g. apt install libportaudio2)"


class AudioError(RuntimeError):
    """An audio failure, described in one line. ``kind``: no_portaudio | no_device | vanished | missing_model."""

    def __init__(self, message: str, kind: str = "no_device"):
        super().__init__(message)
        self.kind = kind


def sd():
    """The sounddevice module, or AudioError when it or PortAudio is missing."""
    try:
        import sounddevice
    except ImportError:
        raise AudioError(f"voice off: sounddevice is not installed ({INSTALL_HINT})", "no_portaudio") from None
    except OSError as exc:  # "PortAudio library not found"
        raise AudioError(f"voice off: {exc} ({INSTALL_HINT})", "no_portaudio") from None
    return sounddevice


def rescan() -> None:
    """PortAudio lists devices once, at initialisation: re-initialise to see a device plugged in
    (or a sound server started) since."""
    s = sd()
    s._terminate()
    s._initialize()


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    hostapi: str
    max_input: int
    max_output: int
    default_samplerate: float


def list_devices(kind: str = "") -> list[Device]:
    """All devices (``kind`` = input | output filters by direction)."""
    s = sd()
    apis = [a["name"] for a in s.query_hostapis()]
    out = []
    for i, d in enumerate(s.query_devices()):
        dev = Device(i, d["name"], apis[d["hostapi"]], d["max_input_channels"], d["max_output_channels"],
                     d["default_samplerate"])
        if kind == "input" and dev.max_input < 1 or kind == "output" and dev.max_output < 1:
            continue
        out.append(dev)
    return out


def resolve_device(spec: str | int | None, kind: str) -> int:
    """A device index from ``spec``: "" / None = the default, an index, or a name substring.
    Raises AudioError(no_device) with the choices when nothing matches."""
    devices = list_devices(kind)
    if not devices:
        raise AudioError(f"voice off: no audio {kind} device found", "no_device")
    if spec in (None, ""):
        s = sd()
        idx = s.default.device[0 if kind == "input" else 1]
        if idx is None or idx < 0:
            idx = next((d.index for d in devices if d.name in ("default", "pulse")), devices[0].index)
        return int(idx)
    if isinstance(spec, int) or str(spec).isdigit():
        idx = int(spec)
        if any(d.index == idx for d in devices):
            return idx
    else:
        for d in devices:
            if str(spec).lower() in d.name.lower():
                return d.index
    names = ", ".join(f"{d.index}: {d.name}" for d in devices)
    raise AudioError(f"voice off: no {kind} device matches {spec!r} (choose from {names})", "no_device")


def describe(exc: BaseException) -> str:
    """One line for any audio-path failure."""
    if isinstance(exc, AudioError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"voice off: audio device error: {text}"


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Linear-interpolation resampling (mono float32); good enough for a mic/echo reference."""
    if sr_from == sr_to or len(x) == 0:
        return x.astype(np.float32, copy=False)
    n = int(round(len(x) * sr_to / sr_from))
    pos = np.arange(n, dtype=np.float64) * (sr_from / sr_to)
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


class SpeechOutput:
    """ONE output stream kept open for a session; utterances take turns on it.

    No utterance waits on a stream being opened: the stream is opened once and runs between
    utterances, playing silence (so the sound server never suspends the device under it either);
    ``begin`` starts an utterance on it, and its first samples go out at the next callback (one
    block, 20 ms). The callback asks the utterance's ``should_play`` (the Speaker's epoch fence)
    before every block, so after a stop not one more block of it is written; closing an utterance cut
    short also drops what the device still holds (``latency_s``). A device that stops asking for
    audio is reopened once per utterance; if that fails, ``wait`` raises one AudioError(vanished) line.
    """

    def __init__(self, sample_rate: int, device: int | None = None, block_s: float = 0.02,
                 latency_s: float = 0.1):
        self.sample_rate = sample_rate
        self.device = device
        self.blocksize = max(64, int(sample_rate * block_s))
        self.latency_s = latency_s
        self.stall_s = 2.0  # no callback for this long: the device is gone (a live one asks every block)
        self.reopen_s = 1.0  # how long one reopen keeps trying
        self.opens = 0  # streams opened so far (1 for a healthy session)
        self._stream = None
        self._current: _Utterance | None = None
        self._lock = threading.Lock()
        self._last_callback = time.monotonic()

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def open(self) -> None:
        """Open and start the stream (no-op when open); AudioError(no_device) in one line."""
        s = sd()  # no PortAudio: its own AudioError
        with self._lock:
            if self._stream is None:
                try:
                    self._stream = self._open_stream(s)
                except Exception as exc:  # noqa: BLE001 - PortAudioError and friends become one line
                    raise AudioError(f"voice off: cannot open the output device ({_detail(exc)})",
                                     "no_device") from None

    def _open_stream(self, s):
        stream = s.OutputStream(samplerate=self.sample_rate, blocksize=self.blocksize, device=self.device,
                                channels=1, dtype="float32", callback=self._callback, latency=self.latency_s)
        stream.start()
        self.opens += 1
        self._last_callback = time.monotonic()
        return stream

    def _alive(self) -> bool:
        return (self._stream is not None and self._stream.active
                and time.monotonic() - self._last_callback < self.stall_s)

    def reopen(self) -> None:
        """Close the stream and open a new one on the same device, trying for up to ``reopen_s`` (a
        restarting sound server takes a moment); AudioError(vanished) if it cannot."""
        with self._lock:
            old, self._stream = self._stream, None
            _close_stream(old)
            deadline = time.monotonic() + self.reopen_s
            while True:
                try:
                    self._stream = self._open_stream(sd())
                    return
                except Exception as exc:  # noqa: BLE001
                    if time.monotonic() >= deadline:
                        raise AudioError("voice off: the output device vanished (reopening it failed: "
                                         f"{_detail(exc)})", "vanished") from None
                time.sleep(0.2)

    def begin(self, should_play: Callable[[], bool] = lambda: True,
              on_first_audio: Callable[[], None] | None = None,
              on_block: Callable[[np.ndarray], None] | None = None) -> _Utterance:
        """A new utterance on the stream (any previous one is stopped); opens the stream if closed and
        reopens it once if it died since the last utterance."""
        self.open()
        u = _Utterance(self, should_play, on_first_audio, on_block)
        if not self._alive():
            self.reopen()
            u.reopened = True
        with self._lock:
            previous, self._current = self._current, u
        if previous is not None:
            previous.stop()
        return u

    def flush(self) -> None:
        """Drop the audio the device holds: abort and restart the stream (a few ms, no reopen)."""
        with self._lock:
            if self._stream is None:
                return
            try:
                self._stream.abort(ignore_errors=True)
                self._stream.start()
                self._last_callback = time.monotonic()
            except Exception:  # noqa: BLE001 - a dead device: the next begin() or wait() reopens it
                pass

    def _release(self, u: _Utterance) -> None:
        with self._lock:
            if self._current is u:
                self._current = None

    def _callback(self, outdata, frames, time_info, status) -> None:  # audio thread
        self._last_callback = time.monotonic()
        u = self._current
        n = u._pull(outdata, frames) if u is not None else 0
        outdata[n:, 0] = 0

    def close(self, drain: bool = False) -> None:
        """Stop the stream (``drain``: after the device played what it holds) and close it."""
        with self._lock:
            stream, self._stream, current, self._current = self._stream, None, self._current, None
        if current is not None:
            current.stop()
        _close_stream(stream, drain)


def _detail(exc: BaseException) -> str:
    return describe(exc).split(": ", 2)[-1]


def _close_stream(stream, drain: bool = False) -> None:
    if stream is None:
        return
    try:
        if drain:
            stream.stop(ignore_errors=True)
        stream.abort(ignore_errors=True)
        stream.close(ignore_errors=True)
    except Exception:  # noqa: BLE001 - the device may already be gone
        pass


class _Utterance:
    """One utterance on a SpeechOutput: ``feed`` chunks as they are synthesized (played gaplessly from
    a FIFO), ``finish`` after the last, ``stop`` to silence it, ``wait`` until it played or stopped."""

    def __init__(self, out: SpeechOutput, should_play: Callable[[], bool],
                 on_first_audio: Callable[[], None] | None, on_block: Callable[[np.ndarray], None] | None):
        self._out = out
        self.should_play = should_play
        self.on_first_audio = on_first_audio
        self.on_block = on_block  # sees every block played (the echo canceller's reference)
        self.blocks_played = 0
        self.completed = False  # the last fed sample went out (not: stopped, or the device died)
        self.reopened = False  # the stream was reopened once for this utterance
        self._fifo: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._pending = np.zeros(0, np.float32)
        self._fed_all = False
        self._stopped = threading.Event()
        self._done = threading.Event()

    def _pull(self, outdata, frames: int) -> int:  # audio thread: fill outdata, return samples written
        if self._done.is_set():
            return 0
        if self._stopped.is_set() or not self.should_play():
            self._done.set()
            return 0
        while len(self._pending) < frames and not self._fed_all:
            try:
                chunk = self._fifo.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                self._fed_all = True
            else:
                self._pending = np.concatenate([self._pending, chunk])
        n = min(frames, len(self._pending))
        outdata[:n, 0] = self._pending[:n]
        self._pending = self._pending[n:]
        if n:
            self.blocks_played += 1
            if self.blocks_played == 1 and self.on_first_audio is not None:
                self.on_first_audio()
            if self.on_block is not None:
                self.on_block(outdata[:n, 0].copy())
        if self._fed_all and not len(self._pending):
            self.completed = True
            self._done.set()
        return n

    def feed(self, samples: np.ndarray) -> None:
        self._fifo.put(np.asarray(samples, np.float32).reshape(-1))

    def finish(self) -> None:
        self._fifo.put(None)

    def stop(self) -> None:
        """Silence it: the next callback (within one block) writes none of its samples. Only sets
        flags, so any thread may call it holding any lock (``close`` drops what the device holds)."""
        self._stopped.set()
        self._done.set()

    def wait(self, timeout: float = 120.0) -> None:
        """Until everything fed has played or ``stop``. A device that stopped taking audio is reopened
        once (the rest of the utterance then plays); AudioError(vanished) if that fails or recurs."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.05):
            if not self._out.is_open:  # closed under us (the TTS closed): nothing more will play
                return
            if not self._out._alive():
                if self.reopened:
                    raise AudioError("voice off: the output device vanished (it stopped taking audio)", "vanished")
                self.reopened = True
                self._out.reopen()
            elif time.monotonic() > deadline:
                raise AudioError("voice off: the output device vanished (it stopped taking audio)", "vanished")

    def close(self) -> None:
        """Leave the stream (it stays open for the next utterance). Cut short, what the device still
        holds of it (up to ``latency_s``) is dropped here: the flush waits for the audio thread, so it
        is done by the speaking thread, never from ``stop`` (which may run under the Speaker's lock)."""
        cut = self.blocks_played and not self.completed
        self.stop()
        self._out._release(self)
        if cut:
            self._out.flush()


class Playback:
    """One output stream for ONE utterance (opened here, closed by ``close``): one-off playback (the
    first-run voice check) and the per-utterance baseline of benchmarks/voice_latency.py. Same face
    as an utterance of SpeechOutput: feed, finish, stop, wait, close."""

    def __init__(self, sample_rate: int, device: int | None = None, block_s: float = 0.02,
                 should_play: Callable[[], bool] = lambda: True,
                 on_first_audio: Callable[[], None] | None = None,
                 on_block: Callable[[np.ndarray], None] | None = None, latency_s: float = 0.1):
        self._out = SpeechOutput(sample_rate, device, block_s, latency_s)
        self._u = self._out.begin(should_play, on_first_audio, on_block)
        self.feed, self.finish, self.stop, self.wait = self._u.feed, self._u.finish, self._u.stop, self._u.wait

    @property
    def completed(self) -> bool:
        return self._u.completed

    def close(self) -> None:
        self._out.close(drain=self._u.completed)  # a finished utterance's tail still in the device plays out


class MicStream:
    """The microphone at ``sample_rate`` Hz mono float32, delivered in blocks on a queue.

    ``read(timeout)`` returns the next block, or None on timeout; it raises AudioError(vanished)
    when the stream died under us (device unplugged, sound server gone).
    """

    def __init__(self, sample_rate: int = 16000, device: int | None = None, block: int = 512):
        self.sample_rate = sample_rate
        self.block = block
        self._q: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self.overflows = 0
        s = sd()
        try:
            self._stream = s.InputStream(samplerate=sample_rate, blocksize=block, device=device, channels=1,
                                         dtype="float32", callback=self._callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001
            raise AudioError(f"voice off: cannot open the input device ({_detail(exc)})", "no_device") from None
        self._last_block = time.monotonic()

    def _callback(self, indata, frames, time_info, status) -> None:  # audio thread
        if status.input_overflow:
            self.overflows += 1
        self._q.put(indata[:, 0].copy())

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        try:
            block = self._q.get(timeout=timeout)
        except queue.Empty:
            block = None
        now = time.monotonic()
        if block is not None:
            self._last_block = now
            return block
        if not self._stream.active:
            raise AudioError("voice off: the input device vanished (its stream stopped)", "vanished")
        # A live stream delivers a block every 32 ms; two seconds of nothing means it is gone.
        if now - self._last_block > 2.0:
            raise AudioError("voice off: the input device vanished (no audio for 2 s)", "vanished")
        return None

    def close(self) -> None:
        try:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001
            pass
