"""Voice on a real-time virtual audio path (PulseAudio null sinks, tests/audio_env.sh): Piper into
the virtual mic → Whisper → the standing query of a running session; barge-in over a long answer;
speech switched off mid-utterance; one output stream for every utterance, reopened when the sound
server comes back; the mic level, push-to-talk and stopping/restarting listening."""

from __future__ import annotations

import threading
import time

import pytest

from engine.clock import RealClock
from engine.events import EventBus
from engine.session import Session, SessionOptions
from engine.speech import Speaker, SpeakerOptions, TurnOptions, TurnTaker, UtteranceHandle
from tests.engine.fakes import ArraySource, ScriptedBackend, solid
from tests.plugins.conftest import MonitorRecorder, need_voice_packages, speech_16k, words, write_wav

pytestmark = [pytest.mark.audio, pytest.mark.slow]

SENTENCE = "Hello from the offline test suite, the quick brown fox jumps over the lazy dog."
QUESTION = "What is on the second slide?"
LONG = ("Here is a long explanation of the slide. It covers the first point in some detail, then the second "
        "point, and then it keeps going for a good while longer. Nobody should have to hear all of it.")


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def voice(pulse):
    need_voice_packages()
    from plugins.asr.whisper import WhisperASR, WhisperOptions
    from plugins.tts.piper import PiperTTS

    return PiperTTS(deterministic=True), WhisperASR(WhisperOptions())


def test_piper_into_the_mic_becomes_the_standing_query_of_a_running_session(pulse, voice):
    tts, asr = voice
    pulse.set_default_sink("mouth")  # the app's voice goes into the virtual mic
    backend = ScriptedBackend(wants_frames=False)
    source = ArraySource([(float(t), solid(40)) for t in range(30)])
    bus = EventBus("voice-test")
    events: list[dict] = []
    bus.subscribe(events.append)
    session = Session(backend, source, bus=bus, clock=RealClock(), options=SessionOptions(duration_s=25))
    runner = threading.Thread(target=session.run, daemon=True)
    turn = TurnTaker(bus, session.clock.now, session.submit_query, None, TurnOptions(echo="off"))
    runner.start()
    asr.start(turn)
    try:
        time.sleep(0.5)
        h = UtteranceHandle(SENTENCE, 0, 0.0, lambda: 0)
        tts.speak(h)
        assert h.first_audio_wall is not None
        assert wait_for(lambda: any(e["type"] == "query" for e in events), 15), "no transcript became a query"
    finally:
        session.stop()
        asr.close()
        runner.join(10)
        pulse.set_default_sink("speaker")
    utt = next(e for e in events if e["type"] == "utterance")
    query = next(e for e in events if e["type"] == "query")
    assert words(utt["text"]) == words(SENTENCE)  # exact, up to punctuation and case
    assert query["source"] == "voice" and query["t"] >= utt["t"] - 1
    assert words(session.queries.standing) == words(SENTENCE)
    assert any(words(t.standing_query) == words(SENTENCE) for t in backend.turns)  # the model saw it


def test_user_speech_barges_in_and_no_stale_audio_follows(pulse, voice, piper_voice, tmp_path):
    tts, asr = voice
    pulse.set_default_sink("speaker")  # headset: the mic hears the user only
    wav = write_wav(tmp_path / "user.wav", speech_16k(piper_voice, QUESTION, pad_s=0.2), 16000)
    bus = EventBus("barge")
    events: list[dict] = []
    bus.subscribe(events.append)
    clock = RealClock()
    speaker = Speaker(tts, bus, clock.now, SpeakerOptions(overlap="queue"))
    submitted: list[str] = []
    turn = TurnTaker(bus, clock.now, lambda text, source: submitted.append(text), speaker, TurnOptions(echo="off"))
    asr.start(turn)
    rec = MonitorRecorder(pulse, "speaker")
    try:
        long_h = speaker.say(LONG, decision_t=1.0)
        queued = speaker.say("This queued answer must never be heard.", decision_t=1.0)
        assert wait_for(lambda: long_h.first_audio_wall is not None, 10)
        assert wait_for(lambda: len(rec.loud_after(long_h.first_audio_wall)) > 5, 5), "no sound left the app"
        user = pulse.say_into_mic(wav)
        t_user = time.perf_counter()
        assert long_h.wait(5), "playback did not stop"
        t_stop = time.perf_counter()
        user.wait(10)
        assert wait_for(lambda: submitted, 10), "the question was not transcribed"
        time.sleep(0.5)
    finally:
        rec.close()
        asr.close()
        speaker.close()
    assert long_h.state == "interrupted" and queued.state == "stale"
    # Silero needs ~0.15 s of speech; the rest is the audio path (1.63 s seen once on a busy 2-core machine,
    # well under the long answer's several seconds, which is what would play on without barge-in)
    assert t_stop - t_user < 2.5
    # what actually reached the speaker: nothing more than a block or two after the stop
    late = rec.loud_after(t_stop + 0.3)
    assert late == [], f"{len(late)} loud blocks after the barge-in"
    assert words(submitted[0]) == words(QUESTION)
    spoken = [e["text"] for e in events if e["type"] == "speech_started"]
    assert spoken == [LONG]


@pytest.mark.parametrize("echo", ["off", "aec"])
def test_open_speakers_aec_keeps_the_app_from_barging_in_on_itself(echo, pulse, voice, piper_voice, tmp_path):
    """The app's voice reaches the mic (open speakers). Without AEC it interrupts itself; with AEC it
    does not, and the user's question still barges in and is transcribed exactly."""
    tts, asr = voice
    if echo == "aec":
        pytest.importorskip("livekit.rtc", reason="livekit (WebRTC AEC3) is not installed")
        from plugins.asr.aec import EchoCanceller

        canceller = EchoCanceller()
        tts.on_played, asr.preprocess = canceller.far, canceller.near
    pulse.set_default_sink("mouth")
    wav = write_wav(tmp_path / "user.wav", speech_16k(piper_voice, QUESTION, pad_s=0.2), 16000)
    bus = EventBus("aec")
    clock = RealClock()
    speaker = Speaker(tts, bus, clock.now)
    submitted: list[str] = []
    turn = TurnTaker(bus, clock.now, lambda text, source: submitted.append(text), speaker,
                     TurnOptions(echo=echo))
    asr.start(turn)
    try:
        h = speaker.say(LONG, decision_t=1.0)
        h.wait(4.0)  # four seconds of the app talking into its own mic
        self_interrupted = h.state == "interrupted"
        if echo == "aec":
            assert not self_interrupted and turn.stats.barge_ins == 0, "AEC let the app barge in on itself"
            user = pulse.say_into_mic(wav)
            assert h.wait(5) and h.state == "interrupted", "the user's speech did not barge in"
            user.wait(10)
            assert wait_for(lambda: submitted, 10)
            # What the transcript contains is NOT asserted here: during the ~0.3 s of double talk
            # before playback stops, AEC3 may clip the user's words or let a few of the app's through
            # (both seen in repeated runs). The exact transcript is asserted without AEC above; this
            # test holds AEC to what it reliably does: no self-barge-in over 4 s of open-speaker
            # playback, while the user's own speech still interrupts and is transcribed.
        else:
            assert self_interrupted and turn.stats.barge_ins >= 1  # the control: this is the problem
    finally:
        asr.close()
        speaker.close()
        tts.on_played, asr.preprocess = None, None
        pulse.set_default_sink("speaker")


def sink_inputs(pulse) -> int:
    return len(pulse.pactl("list", "short", "sink-inputs").splitlines())


def source_outputs(pulse) -> int:
    return len(pulse.pactl("list", "short", "source-outputs").splitlines())


@pytest.mark.parametrize("how", ["close", "barge_in"])
def test_speech_switched_off_or_barged_in_goes_quiet_on_the_sink_within_100_ms(how, pulse, voice):
    tts, _ = voice
    pulse.set_default_sink("speaker")
    speaker = Speaker(tts, EventBus("off"), RealClock().now)
    rec = MonitorRecorder(pulse, "speaker")
    try:
        h = speaker.say(LONG, decision_t=1.0)
        assert wait_for(lambda: h.first_audio_wall is not None, 15)
        assert wait_for(lambda: len(rec.loud_after(h.first_audio_wall)) > 15, 5), "no sound left the app"
        t_stop = time.perf_counter()
        speaker.close() if how == "close" else speaker.barge_in()
        assert h.wait(1.0) and h.state == "interrupted"
        time.sleep(0.6)
        before = rec.loud_after(t_stop - 0.2)
    finally:
        rec.close()
        speaker.close()
    assert sum(w < t_stop for w in before) >= 5  # the control: it was loud right up to the stop
    # the monitor hears a block ~20 ms after the sink plays it: 0.1 s + that
    late = [round((w - t_stop) * 1000) for w in before if w > t_stop + 0.12]
    assert late == [], f"loud blocks {late} ms after {how}"


def test_every_utterance_plays_through_one_stream_that_stays_open(pulse, voice):
    tts, _ = voice
    pulse.set_default_sink("speaker")
    tts.open()
    opens = tts.output.opens
    speaker = Speaker(tts, EventBus("one"), RealClock().now, SpeakerOptions(overlap="queue"))
    rec = MonitorRecorder(pulse, "speaker")
    try:
        handles = [speaker.say(text, decision_t=1.0) for text in ("One.", "Two.", "Three.")]
        assert all(h.wait(15) and h.state == "done" for h in handles)
        time.sleep(0.3)
        idle_inputs = sink_inputs(pulse)  # between utterances the stream is still there (playing silence)
    finally:
        rec.close()
        speaker.close()
    assert tts.output.opens == opens and idle_inputs == 1
    assert all(len(rec.loud_after(h.first_audio_wall)) > 0 for h in handles)
    assert sink_inputs(pulse) == 0  # closing the Speaker closed the TTS's stream


def test_mic_level_push_to_talk_and_listening_stopped_and_restarted(pulse, voice, piper_voice, tmp_path):
    from plugins.asr.whisper import LEVEL_FLOOR_DB

    _, asr = voice
    pulse.set_default_sink("speaker")
    wav = write_wav(tmp_path / "q.wav", speech_16k(piper_voice, QUESTION, pad_s=0.2), 16000)
    submitted: list[str] = []
    turn = TurnTaker(EventBus("ptt"), RealClock().now, lambda text, source: submitted.append(text), None,
                     TurnOptions(echo="off"))
    base = source_outputs(pulse)
    asr.start(turn)
    asr.o.push_to_talk = True
    try:
        assert source_outputs(pulse) == base + 1 and asr.listening
        time.sleep(0.3)
        quiet = asr.level()  # the virtual mic hears digital silence
        asr.press()
        pulse.say_into_mic(wav).wait(10)
        time.sleep(0.2)
        asr.release()
        assert wait_for(lambda: submitted, 10), "push-to-talk produced no transcript"
    finally:
        asr.o.push_to_talk = False
        asr.close()
    assert words(submitted[0]) == words(QUESTION)
    assert quiet == LEVEL_FLOOR_DB
    # stopped listening: no mic stream left on the server, no thread left running
    worker = asr.worker.thread
    assert source_outputs(pulse) == base and not asr.listening and not worker.is_alive()
    time.sleep(0.6)
    assert asr.level() == LEVEL_FLOOR_DB  # no mic audio: the level falls to the floor
    asr.start(turn)  # listening again
    try:
        assert source_outputs(pulse) == base + 1 and asr.listening and asr.worker.thread.is_alive()
        player, levels = pulse.say_into_mic(wav), []
        while player.poll() is None:
            levels.append(asr.level())
            time.sleep(0.05)
    finally:
        asr.close()
    assert max(levels) > -40  # Piper's voice on the virtual mic (silence reads -100, as asserted above)
    assert source_outputs(pulse) == base and not asr.listening


def test_the_output_stream_is_reopened_when_the_sound_server_comes_back(pulse, voice):
    """Last in this module: it restarts the module's PulseAudio server mid-utterance."""
    from tests.plugins.conftest import start_pulse, stop_pulse

    tts, _ = voice
    pulse.set_default_sink("speaker")
    tts.open()
    opens = tts.output.opens
    speaker = Speaker(tts, EventBus("back"), RealClock().now)
    try:
        h = speaker.say(LONG, decision_t=1.0)
        assert wait_for(lambda: h.first_audio_wall is not None, 15)
        time.sleep(0.3)
        stop_pulse(pulse)
        start_pulse(pulse.runtime)  # the same socket: the server is back within the reopen's second
        rec = MonitorRecorder(pulse, "speaker")
        t_back = time.perf_counter()
        try:
            assert wait_for(lambda: len(rec.loud_after(t_back)) > 10, 10), "nothing played after the restart"
            played_on = not h.done and not speaker.failed  # the rest of the answer plays on the new stream
        finally:
            rec.close()
    finally:
        speaker.close()
    assert played_on and h.state == "interrupted" and not h.error
    assert tts.output.opens == opens + 1
