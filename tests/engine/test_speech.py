"""Speaker / TurnTaker rules with fakes (SilentTTS, ScriptedASR) — no audio device needed."""

from __future__ import annotations

import time

import pytest

from engine.clock import VirtualClock
from engine.events import EventBus
from engine.speech import Speaker, SpeakerOptions, TurnOptions, TurnTaker
from plugins.asr.fake import ScriptedASR, ScriptLine
from plugins.tts.fake import SilentTTS

LONG = "This is a long answer that goes on for quite a while so that it is still playing later. " * 3


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def rig():
    made = []

    def make(overlap="text_only", time_scale=0.05, **tts_kw):
        bus, clock = EventBus("s"), VirtualClock()
        events = []
        bus.subscribe(events.append)
        tts = SilentTTS(time_scale=time_scale, **tts_kw)
        sp = Speaker(tts, bus, clock.now, SpeakerOptions(overlap=overlap)).attach()
        made.append(sp)
        return sp, tts, bus, clock, events

    yield make
    for sp in made:
        sp.close()


def types(events):
    return [e["type"] for e in events if e["type"] in ("speech_started", "speech_ended")]


def test_response_and_delegate_decisions_are_spoken_silence_is_not(rig):
    sp, tts, bus, clock, events = rig(time_scale=0.01)
    bus.emit(1, "decision", action="silence", text="")
    bus.emit(2, "decision", action="response", text="Slide two is up.")
    assert wait_for(lambda: not sp.speaking and len(tts.spoken) == 1)
    bus.emit(3, "decision", action="delegate", text="Let me check.", delegate_query="why?")
    assert wait_for(lambda: not sp.speaking and len(tts.spoken) == 2)
    assert [s.text for s in tts.spoken] == ["Slide two is up.", "Let me check."]
    assert all(not s.interrupted and s.played_s == pytest.approx(s.duration_s) for s in tts.spoken)
    assert types(events) == ["speech_started", "speech_ended"] * 2
    started = [e for e in events if e["type"] == "speech_started"]
    assert started[0]["decision_t"] == 2 and started[0]["first_audio_ms"] >= 0


def test_brain_result_is_spoken_in_brief(rig):
    from engine.speech import spoken_digest

    sp, tts, bus, clock, events = rig(time_scale=0.01)
    bus.emit(9, "delegate_result", task_id="bg-1", query="why?", text="Lima is the capital. " * 40)
    assert wait_for(lambda: not sp.speaking and len(tts.spoken) == 1)
    assert tts.spoken[0].text == spoken_digest("Lima is the capital. " * 40)
    assert tts.spoken[0].text.endswith("capital.") and len(tts.spoken[0].text) <= 300


def test_text_only_overlap_shows_new_response_without_speaking(rig):
    sp, tts, bus, *_ = rig("text_only")
    h1 = sp.say(LONG)
    assert wait_for(lambda: h1.state == "playing")
    assert sp.say("A second thought.") is None
    assert sp.shown_only == 1
    h1.interrupt()
    assert h1.wait(2)
    assert [s.text for s in tts.spoken] == [LONG]


def test_queue_overlap_speaks_in_order(rig):
    sp, tts, *_ = rig("queue", time_scale=0.01)
    handles = [sp.say(t) for t in ("One.", "Two.", "Three.")]
    assert all(h.wait(5) for h in handles)
    assert [s.text for s in tts.spoken] == ["One.", "Two.", "Three."]
    assert [h.state for h in handles] == ["done"] * 3


def test_newest_wins_interrupts_the_current_utterance(rig):
    sp, tts, *_ = rig("newest_wins")
    h1 = sp.say(LONG)
    assert wait_for(lambda: h1.first_audio_wall is not None)
    h2 = sp.say("Newer.")
    assert h1.wait(2) and h1.state == "interrupted"
    assert h2.wait(5) and h2.state == "done"
    assert tts.spoken[0].interrupted and tts.spoken[0].played_s < tts.spoken[0].duration_s
    assert tts.spoken[1].text == "Newer."


def test_barge_in_stops_playback_promptly_and_fences_queued_audio(rig):
    sp, tts, bus, clock, events = rig("queue")
    h1, h2 = sp.say(LONG), sp.say("Queued before the user spoke.")
    assert wait_for(lambda: h1.first_audio_wall is not None)
    t0 = time.perf_counter()
    sp.barge_in()
    assert h1.wait(1.0)
    stop_ms = (time.perf_counter() - t0) * 1000
    assert h1.state == "interrupted" and stop_ms < 200
    assert h2.wait(1.0) and h2.state == "stale"
    time.sleep(0.1)
    assert [s.text for s in tts.spoken] == [LONG]  # the queued (stale) one never reached the device
    ended = [e for e in events if e["type"] == "speech_ended"]
    assert ended and ended[-1]["interrupted"] is True


def test_close_mid_utterance_stops_it_within_a_block_and_speaks_no_more(rig):
    """Speak switched off: the integrator calls close() (SilentTTS checks should_play every 20 ms
    block, the way the output stream's callback does)."""
    sp, tts, bus, clock, events = rig("queue", time_scale=1.0)
    h1, h2 = sp.say(LONG), sp.say("Queued behind it.")
    assert wait_for(lambda: h1.first_audio_wall is not None)
    time.sleep(0.1)
    t0 = time.perf_counter()
    sp.close()
    close_ms = (time.perf_counter() - t0) * 1000
    played = tts.spoken[0].played_s
    time.sleep(0.1)
    assert close_ms < 100 and h1.state == "interrupted" and h2.state == "stale"
    assert tts.spoken[0].played_s == played < tts.spoken[0].duration_s  # not one block more
    assert len(tts.spoken) == 1 and sp.say("After the switch.") is None
    sp.close()  # idempotent


def test_handle_from_an_old_epoch_never_plays(rig):
    sp, tts, *_ = rig("queue", time_scale=0.01)
    h = sp.say("About to go stale.")
    sp.barge_in()  # before the worker picks it up (or during): either way nothing after the fence
    assert h.wait(2)
    assert h.state in ("stale", "interrupted")
    assert not h.should_play()


def test_tts_failure_turns_voice_off_and_text_goes_on(rig):
    sp, tts, bus, clock, events = rig(fail_with="output device vanished")
    h = sp.say("hello")
    assert h.wait(2) and h.state == "failed"
    errors = [e for e in events if e["type"] == "error"]
    assert errors and errors[0]["where"] == "tts" and "vanished" in errors[0]["message"]
    assert sp.say("later") is None  # voice stays off; the decision events still carry the text


def test_scripted_user_speech_barges_in_and_becomes_the_standing_query(rig):
    sp, tts, bus, clock, events = rig("queue")
    submitted = []
    turn = TurnTaker(bus, clock.now, lambda text, source: submitted.append((text, source)), sp,
                     TurnOptions(echo="off"))
    asr = ScriptedASR([ScriptLine(5.0, "what is on the slide", duration_s=1.0)], clock.now)
    asr.start(turn)
    h = sp.say(LONG, decision_t=4.0)
    assert wait_for(lambda: h.first_audio_wall is not None)
    clock.sleep_until(5.2)  # the user starts talking over the long response
    assert h.wait(1.0) and h.state == "interrupted"
    assert sp.say("Decided while the user speaks.", decision_t=5.0) is None
    clock.sleep_until(6.1)
    asr.wait(2)
    assert submitted == [("what is on the slide", "voice")]
    # a response from the tick before the user's turn ended is stale: shown, not spoken
    assert sp.say("Answer to the old question.", decision_t=5.0) is None
    fresh = sp.say("Answer to the new question.", decision_t=6.0)
    assert fresh is not None and fresh.wait(5) and fresh.state == "done"
    kinds = [e["type"] for e in events]
    assert "partial_transcript" in kinds and "utterance" in kinds
    utt = next(e for e in events if e["type"] == "utterance")
    assert utt["text"] == "what is on the slide" and utt["t"] >= 6.0 and utt["started_t"] >= 5.0
    assert turn.stats.barge_ins == 1
    assert [s.text for s in tts.spoken] == [LONG, "Answer to the new question."]
    asr.close()


def test_gate_mode_ignores_the_mic_while_the_app_speaks(rig):
    sp, *_ = rig()
    turn = TurnTaker(EventBus("s"), lambda: 0.0, lambda *a, **k: None, sp, TurnOptions(echo="gate", gate_tail_s=0.1))
    assert not turn.mic_gated()
    h = sp.say(LONG)
    assert wait_for(lambda: h.state == "playing")
    assert turn.mic_gated()
    h.interrupt()
    assert h.wait(2)
    assert wait_for(lambda: not sp.speaking)
    assert turn.mic_gated()  # the tail: the room still rings for a moment
    assert wait_for(lambda: not turn.mic_gated(), timeout=1.0)
    assert not TurnTaker(EventBus("s"), lambda: 0.0, print, sp, TurnOptions(echo="off")).mic_gated()


def test_bad_options_are_one_clear_error():
    with pytest.raises(ValueError, match="overlap must be one of"):
        SpeakerOptions(overlap="loudest")
    with pytest.raises(ValueError, match="echo must be one of"):
        TurnOptions(echo="magic")
