"""The desktop app speaks and listens: the real window, the real Piper voice and Whisper, a private
PulseAudio server with null sinks (tests/audio_env.sh). Speech that leaves the app is recorded from
the ``speaker`` sink's monitor; the user's voice is Piper audio played into the ``mouth`` sink, which
the virtual microphone hears."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.facade import Controller, RunOptions
from app.wiring import DEMO_CLIP, build_session
from tests.engine.fakes import ArraySource, ScriptedBackend, solid
from tests.plugins.conftest import (
    need_voice_packages,
    speech_16k,
    start_pulse,
    stop_pulse,
    words,
    write_wav,
)
from ui.main_window import MainWindow

pytestmark = [pytest.mark.audio, pytest.mark.slow,
              pytest.mark.skipif(not DEMO_CLIP.exists(), reason=f"demo clip missing: {DEMO_CLIP}")]

LONG = ("This is a long answer about the slide that keeps going, sentence after sentence, so that it is "
        "still playing when the user switches speech off. It covers the first point, then the second point, "
        "then a third one, and it would go on for a good while longer.")
SPOKEN_QUERY = "Tell me when the chart turns red."


@pytest.fixture(scope="module")
def pulse():
    need_voice_packages()
    runtime = Path(tempfile.mkdtemp(prefix="presence-pulse-ui-"))
    p = start_pulse(runtime)
    saved = {k: os.environ.get(k) for k in p.env}
    os.environ.update(p.env)
    from plugins import audio

    audio.rescan()
    yield p
    stop_pulse(p)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    audio.rescan()
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def user_voice():
    """Piper for synthesis only: the user's voice, played into the virtual microphone."""
    need_voice_packages()
    from plugins.tts.piper import PiperTTS

    return PiperTTS(sink_factory=lambda *a, **k: None, deterministic=True)


class SinkRecorder:
    """Records what reaches a sink's monitor, with a wall time per 20 ms block."""

    def __init__(self, pulse, sink: str = "speaker"):
        self.proc = subprocess.Popen(["parec", f"--device={sink}.monitor", "--format=s16le", "--rate=16000",
                                      "--channels=1", "--latency-msec=20"], stdout=subprocess.PIPE,
                                     env={**os.environ, **pulse.env})
        self.blocks: list[tuple[float, float]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.proc.stdout.read(640)
            if not data:
                return
            x = np.frombuffer(data, np.int16).astype(np.float32) / 32768
            self.blocks.append((time.monotonic(), float(np.sqrt(np.mean(x * x)))))

    def loud_between(self, start: float, end: float = float("inf"), level: float = 0.01) -> int:
        return sum(1 for w, r in self.blocks if start < w < end and r > level)

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


def window(qtbot, settings, build=None):
    win = MainWindow(Controller(settings, build=build), first_run_check=False, thumbnails=False, gpu_total=None)
    qtbot.addWidget(win)
    win.show()
    return win


def scripted(script, seconds):
    def build(s, **kw):
        frames = [(float(t), solid(30 + t)) for t in range(seconds)]
        return build_session(s, backend=ScriptedBackend(script), source=ArraySource(frames), **kw)

    return build


def test_a_response_is_spoken_on_the_sink_and_speak_off_stops_it_at_once(qtbot, settings, pulse):
    pulse.set_default_sink("speaker")
    settings.voice.speak, settings.voice.listen, settings.voice.tts = True, False, "piper"
    win = window(qtbot, settings, build=scripted({1: f"</response> {LONG}", 6: "</response> A second answer."}, 12))
    rec = SinkRecorder(pulse)
    try:
        assert win.start(RunOptions(duration=12))
        qtbot.waitUntil(lambda: any(e["type"] == "speech_started" for e in win.events), timeout=15000)
        qtbot.waitUntil(lambda: rec.loud_between(0) > 10, timeout=5000)  # audio really left the app
        assert win.voice_label.text().startswith("Speaking")
        qtbot.wait(400)
        off_at = time.monotonic()
        win.toolbar.speak_act.trigger()  # the user switches Speak off mid-utterance
        assert not win.toolbar.speak_act.isChecked() and not win.controller.settings.voice.speak
        qtbot.waitUntil(lambda: not win.controller.running, timeout=20000)
        win.pump.drain()
    finally:
        rec.close()
    assert rec.loud_between(off_at + 0.3) == 0, "speech went on after Speak was switched off"
    started = [e for e in win.events if e["type"] == "speech_started"]
    assert len(started) == 1 and started[0]["text"] == LONG  # the answer at t=6 was not spoken
    assert any(e["type"] == "decision" and e.get("text") == "A second answer." for e in win.events)


def test_speech_into_the_microphone_becomes_the_standing_query(qtbot, settings, pulse, user_voice, tmp_path):
    pulse.set_default_sink("speaker")  # the app's own voice does not reach the mic (a headset)
    settings.voice.speak, settings.voice.listen, settings.voice.echo = False, False, "off"
    wav = write_wav(tmp_path / "user.wav", speech_16k(user_voice, SPOKEN_QUERY), 16000)
    seconds = 25
    win = window(qtbot, settings, build=scripted({}, seconds))
    assert win.start(RunOptions(duration=seconds))
    qtbot.waitUntil(lambda: win.controller.running and win.timeline.latest >= 0, timeout=10000)
    win.toolbar.listen_act.trigger()  # switched on during the session
    assert win.toolbar.listen_act.isChecked()
    qtbot.wait(500)
    pulse.say_into_mic(wav).wait(15)
    qtbot.waitUntil(lambda: bool(win.transcript.texts("query")), timeout=20000)
    assert words(win.transcript.texts("query")[0]) == words(SPOKEN_QUERY)
    query = next(e for e in win.events if e["type"] == "query")
    assert query["source"] == "voice"
    win.stop()
    qtbot.waitUntil(lambda: not win.controller.running, timeout=20000)
