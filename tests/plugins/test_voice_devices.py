"""Voice failures never stop a session: no PortAudio, no device, a missing voice (FAKE sounddevice
module), and a sound server that dies mid-session (real PulseAudio, killed)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.voice import start_voice
from engine.clock import RealClock, VirtualClock
from engine.events import EventBus
from engine.session import Session, SessionOptions
from plugins import audio
from tests.engine.fakes import ArraySource, ScriptedBackend, solid
from tests.plugins.conftest import need_voice_packages, start_pulse, stop_pulse

SAYINGS = ["The title slide is up.", "Now a chart of sales by month appears.", "A diagram of the pipeline.",
           "Someone typed a question in the chat.", "The speaker switched to a code editor.", "Back to slides."]


class Built:
    def __init__(self, session, bus):
        self.session, self.bus = session, bus


def make_built(seconds=6, clock=None, script=None):
    bus = EventBus("voice-fail")
    events: list[dict] = []
    bus.subscribe(events.append)
    backend = ScriptedBackend(script or {t: f"</response> {SAYINGS[t % len(SAYINGS)]}" for t in range(seconds)},
                              wants_frames=False)
    session = Session(backend, ArraySource([(float(t), solid(9)) for t in range(seconds)]), bus=bus,
                      clock=clock or VirtualClock(), options=SessionOptions(duration_s=seconds))
    return Built(session, bus), events


class FakeSoundDevice:
    """FAKE sounddevice module: a machine with PortAudio but no devices at all."""

    class default:
        device = (-1, -1)

    @staticmethod
    def query_hostapis():
        return [{"name": "ALSA"}]

    @staticmethod
    def query_devices():
        return []


def _no_portaudio():
    raise audio.AudioError("voice off: PortAudio library not found (install `presence[voice]` ...)", "no_portaudio")


@pytest.mark.parametrize("case", ["no_device", "no_portaudio", "missing_voice"])
def test_voice_failure_is_one_line_and_the_session_runs_on(case, monkeypatch, tmp_path):
    need_voice_packages()
    if case == "no_device":
        monkeypatch.setattr(audio, "sd", lambda: FakeSoundDevice)
    elif case == "no_portaudio":
        monkeypatch.setattr(audio, "sd", _no_portaudio)
    settings = Settings()
    settings.voice.speak = settings.voice.listen = True
    if case == "missing_voice":
        settings.voice.voice = str(tmp_path / "gone.onnx")
        settings.voice.listen = False
    built, events = make_built()
    lines: list[str] = []
    voice = start_voice(settings.voice, built.bus, built.session.clock.now, built.session.submit_query, lines.append)
    result = built.session.run()
    voice.close()
    assert len(lines) == 1, lines
    expected = {"no_device": "no audio output device found", "no_portaudio": "PortAudio library not found",
                "missing_voice": "Piper voice not found"}[case]
    assert expected in lines[0] and "continuing with text only" in lines[0]
    # nothing lost: every second decided and logged, the responses' text is in the log
    assert result.ticks == 6 and result.decisions == 6 and result.error is None
    assert sum(e["type"] == "decision" and e["action"] == "response" for e in events) == 6


def test_silent_tts_through_the_wiring_speaks_the_first_response():
    settings = Settings()
    settings.voice.speak, settings.voice.listen, settings.voice.tts = True, False, "silent"
    built, events = make_built(seconds=3)
    lines: list[str] = []
    voice = start_voice(settings.voice, built.bus, built.session.clock.now, built.session.submit_query, lines.append)
    built.session.run()
    speaker = voice.speaker
    assert speaker.handles and speaker.handles[0].wait(5)
    voice.close()
    assert lines == []
    assert speaker.tts.spoken[0].text == SAYINGS[0]
    assert speaker.shown_only >= 1  # the next responses arrived while it spoke: text only (the default)


@pytest.mark.audio
@pytest.mark.slow
def test_sound_server_dies_mid_session_voice_goes_off_session_goes_on(monkeypatch):
    need_voice_packages()
    runtime = Path(tempfile.mkdtemp(prefix="presence-pulse-lost-"))
    pulse = start_pulse(runtime)
    for k, v in pulse.env.items():
        monkeypatch.setenv(k, v)
    audio.rescan()
    try:
        settings = Settings()
        settings.voice.speak = settings.voice.listen = True
        settings.voice.echo = "off"
        long = "This answer is long enough to still be playing when the sound server goes away. " * 3
        built, events = make_built(seconds=40, clock=RealClock(), script={0: f"</response> {long}"})
        lines: list[str] = []
        voice = start_voice(settings.voice, built.bus, built.session.clock.now, built.session.submit_query,
                            lines.append)
        assert lines == [] and voice.speak_on and voice.listen_on
        runner = threading.Thread(target=built.session.run, daemon=True)
        runner.start()
        speaker = voice.speaker
        end = time.monotonic() + 10
        while not any(e["type"] == "speech_started" for e in events) and time.monotonic() < end:
            time.sleep(0.05)
        assert any(e["type"] == "speech_started" for e in events), "nothing was spoken before the kill"
        stop_pulse(pulse)  # the device vanishes under both streams
        end = time.monotonic() + 15
        while {e.get("where") for e in events if e["type"] == "error"} != {"tts", "asr"} and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(3.0)  # the session keeps ticking without voice
        built.session.stop()
        runner.join(20)
        voice.close()
    finally:
        stop_pulse(pulse)
        for k in pulse.env:
            monkeypatch.delenv(k, raising=False)
        audio.rescan()
    errors = [e for e in events if e["type"] == "error"]
    assert {e["where"] for e in errors} == {"tts", "asr"}
    assert all("vanished" in e["message"] for e in errors)
    assert len(lines) == 2 and all("vanished" in ln for ln in lines)  # one line per broken direction
    assert speaker.failed and speaker.handles[0].state == "failed"
    ended = next(e for e in events if e["type"] == "session_ended")
    last_error_t = max(e["t"] for e in errors)
    decided = sorted(e["t"] for e in events if e["type"] in ("decision", "skipped"))  # busy skips come early
    assert ended["error"] is None and ended["ticks"] == len(decided)
    assert decided == list(range(len(decided))) and decided[-1] >= int(last_error_t) + 1  # it went on


def _presence(*args, env=None):
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "app.cli", *args, "--headless"], cwd=root, capture_output=True, text=True,
                       timeout=120, env=e)
    return r, json


@pytest.mark.slow
def test_cli_speak_with_the_silent_voice_logs_speech_events(short_clip, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[voice]\ntts = "silent"\n')
    log = tmp_path / "out.jsonl"
    r, json = _presence("run", "--source", str(short_clip), "--backend", "heuristic", "--fast", "--quiet",
                        "--speak", "--no-listen", "--config", str(cfg), "--log", str(log),
                        "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    events = [json.loads(line) for line in log.read_text().splitlines()]
    first_response = next(e for e in events if e["type"] == "decision" and e["action"] == "response")
    started = [e for e in events if e["type"] == "speech_started"]
    assert started and started[0]["text"] == first_response["text"]


@pytest.mark.slow
def test_cli_listen_without_a_device_is_one_line_and_exit_0(short_clip, tmp_path):
    log = tmp_path / "out.jsonl"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[voice]\ninput_device = "no-such-microphone"\n')
    # no sound server here, and a mic name that matches nothing on any machine
    r, json = _presence("run", "--source", str(short_clip), "--backend", "heuristic", "--fast", "--quiet",
                        "--no-speak", "--listen", "--config", str(cfg), "--log", str(log),
                        "--store", str(tmp_path / "s.sqlite"), env={"PULSE_SERVER": "unix:/nonexistent/pulse/native"})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("presence:")]
    assert len(lines) == 1 and "voice off" in lines[0] and "continuing with text only" in lines[0], r.stderr
    decisions = [json.loads(line) for line in log.read_text().splitlines() if '"decision"' in line]
    assert len(decisions) == 12  # every second of the 12 s clip, nothing lost
