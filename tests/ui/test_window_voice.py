"""The desktop app speaks and listens: the real window, the real Piper voice and Whisper, a private
PulseAudio server with null sinks (tests/audio_env.sh). Speech that leaves the app is recorded from
the ``speaker`` sink's monitor; the user's voice is Piper audio played into the ``mouth`` sink, which
the virtual microphone hears."""

from __future__ import annotations

import time

import pytest

from app.facade import Controller, RunOptions
from app.wiring import DEMO_CLIP, build_session
from tests.engine.fakes import ArraySource, ScriptedBackend, solid
from tests.plugins.conftest import (
    MonitorRecorder,
    need_voice_packages,
    pulse_server,
    speech_16k,
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
    with pulse_server("presence-pulse-ui-") as p:
        yield p


@pytest.fixture(scope="module")
def user_voice():
    """Piper for synthesis only: the user's voice, played into the virtual microphone."""
    need_voice_packages()
    from plugins.tts.piper import PiperTTS

    return PiperTTS(sink_factory=lambda *a, **k: None, deterministic=True)


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
    # Each answer on two or three seconds: on a loaded machine the session's first seconds can be skipped(busy),
    # and a repeat decided while the first one plays is shown only (the default overlap policy).
    script = {t: f"</response> {LONG}" for t in (1, 2, 3)} | {t: "</response> A second answer." for t in (6, 7)}
    win = window(qtbot, settings, build=scripted(script, 12))
    rec = MonitorRecorder(pulse, "speaker")
    try:
        assert win.start(RunOptions(duration=12))
        qtbot.waitUntil(lambda: any(e["type"] == "speech_started" for e in win.events), timeout=15000)
        qtbot.waitUntil(lambda: len(rec.loud_after(0)) > 10, timeout=5000)  # audio really left the app
        assert win.voice_label.text().startswith("Speaking")
        qtbot.wait(400)
        off_at = time.perf_counter()
        win.toolbar.speak_act.trigger()  # the user switches Speak off mid-utterance
        assert not win.toolbar.speak_act.isChecked() and not win.controller.settings.voice.speak
        qtbot.waitUntil(lambda: not win.controller.running, timeout=20000)
        win.pump.drain()
    finally:
        rec.close()
    assert rec.loud_after(off_at + 0.3) == [], "speech went on after Speak was switched off"
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
