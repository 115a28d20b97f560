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


class Playback:
    """One output stream for one utterance: ``feed`` sentences as they are synthesized, the device
    plays them gaplessly from a FIFO, ``stop`` silences it within one block.

    ``should_play`` is asked before every block (the Speaker's epoch fence); ``on_first_audio`` fires
    from the audio thread when the first non-silent block goes out.
    """

    def __init__(self, sample_rate: int, device: int | None = None, block_s: float = 0.02,
                 should_play: Callable[[], bool] = lambda: True,
                 on_first_audio: Callable[[], None] | None = None,
                 on_block: Callable[[np.ndarray], None] | None = None, latency_s: float = 0.1):
        self.sample_rate = sample_rate
        self.blocksize = max(64, int(sample_rate * block_s))
        self.should_play = should_play
        self.on_first_audio = on_first_audio
        self.on_block = on_block  # sees every block played (the echo canceller's reference)
        self.blocks_played = 0
        self.blocks_after_stop = 0
        self._fifo: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self._pending = np.zeros(0, np.float32)
        self._fed_all = False
        self._stopped = threading.Event()
        self._drained = threading.Event()
        self._error: str = ""
        self._last_callback = time.monotonic()
        self._completed = False  # set when the last fed sample went out (not when the stream died)
        s = sd()
        try:
            self._stream = s.OutputStream(samplerate=sample_rate, blocksize=self.blocksize, device=device,
                                          channels=1, dtype="float32", callback=self._callback,
                                          finished_callback=self._drained.set, latency=latency_s)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError and friends become one line
            raise AudioError(f"voice off: cannot open the output device ({describe(exc).split(': ', 2)[-1]})",
                             "no_device") from None

    def _callback(self, outdata, frames, time_info, status) -> None:  # audio thread
        self._last_callback = time.monotonic()
        if self._stopped.is_set() or not self.should_play():
            outdata.fill(0)
            raise _stop_callback()
        while len(self._pending) < frames:
            try:
                chunk = self._fifo.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                self._fed_all = True
                break
            self._pending = np.concatenate([self._pending, chunk])
        n = min(frames, len(self._pending))
        outdata[:n, 0] = self._pending[:n]
        outdata[n:, 0] = 0
        self._pending = self._pending[n:]
        if n:
            self.blocks_played += 1
            if self.blocks_played == 1 and self.on_first_audio is not None:
                self.on_first_audio()
            if self.on_block is not None:
                self.on_block(outdata[:n, 0].copy())
        if self._fed_all and not len(self._pending):
            self._completed = True
            raise _stop_callback()

    def feed(self, samples: np.ndarray) -> None:
        self._fifo.put(np.asarray(samples, np.float32).reshape(-1))

    def finish(self) -> None:
        self._fifo.put(None)

    def stop(self) -> None:
        self._stopped.set()

    def wait(self, timeout: float = 120.0) -> None:
        """Until everything fed has played or ``stop``; raises AudioError if the device vanished."""
        deadline = time.monotonic() + timeout
        while not self._drained.wait(0.05):
            now = time.monotonic()
            if not self._stream.active:
                break
            # A live device asks for a block every 20 ms: two silent seconds mean it is gone.
            if now - self._last_callback > 2.0 or now > deadline:
                self._error = "the output device vanished (it stopped taking audio)"
                break
        if not self._error and not self._completed and not self._stopped.is_set() and self.should_play():
            self._error = "the output device vanished (the stream ended before the audio did)"
        if self._error:
            raise AudioError(f"voice off: {self._error}", "vanished")

    def close(self) -> None:
        try:
            self._stream.abort(ignore_errors=True)
            self._stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - the device may already be gone
            pass


def _stop_callback() -> BaseException:
    return sd().CallbackStop()


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
            raise AudioError(f"voice off: cannot open the input device ({describe(exc).split(': ', 2)[-1]})",
                             "no_device") from None
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
