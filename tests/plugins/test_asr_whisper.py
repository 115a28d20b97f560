"""Whisper ASR without a device: Piper speech fed block by block through the real Silero VAD and
Whisper tiny.en (FAKE mic = a numpy array), plus the cutter's rules with a FAKE VAD."""

from __future__ import annotations

import time

import numpy as np
import pytest

from plugins.asr.vad import WINDOW, CutterOptions, StreamingVAD, UtteranceCutter
from plugins.audio import AudioError
from tests.plugins.conftest import need_voice_packages, speech_16k, words

SENTENCE = "Hello from the offline test suite, the quick brown fox jumps over the lazy dog."


class RecordingListener:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def on_speech_start(self):
        self.calls.append(("start", ""))

    def on_speech_end(self):
        self.calls.append(("end", ""))

    def on_partial(self, text):
        self.calls.append(("partial", text))

    def on_utterance(self, text):
        self.calls.append(("utterance", text))

    def on_error(self, message):
        self.calls.append(("error", message))

    def kinds(self):
        return [k for k, _ in self.calls]


def blocks(audio: np.ndarray):
    n = len(audio) // WINDOW * WINDOW
    return audio[:n].reshape(-1, WINDOW)


class ScriptedVAD:
    """FAKE VAD: returns the next scripted probability per window."""

    def __init__(self, probs):
        self.probs = list(probs)

    def __call__(self, window):
        return self.probs.pop(0) if self.probs else 0.0


@pytest.mark.parametrize("speculate", [False, True])
def test_cutter_needs_min_speech_and_ends_after_the_pause(speculate):
    win_s = WINDOW / 16000
    opts = CutterOptions(min_speech_s=3 * win_s, end_of_utterance_s=10 * win_s, partial_every_s=0,
                         speculate_s=0.2 if speculate else 0)
    probs = [0.9] * 2 + [0.0] * 5 + [0.9] * 20 + [0.0] * 9 + [0.9] * 3 + [0.0] * 10
    cutter = UtteranceCutter(ScriptedVAD(probs), opts)
    events = []
    for i in range(len(probs)):
        events += [(i, k) for k, _ in cutter.feed(np.zeros(WINDOW, np.float32))]
    # a 2-window click is ignored; speech starts at the 3rd speech window (i=9); the 9-window pause
    # does not end it; ten silent windows after the last speech (i=38) do (i=48)
    if not speculate:
        assert events == [(9, "start"), (48, "end")]
    else:  # 6 windows (0.19 s) into each pause a speculation; speech at i=36 voids the first
        assert events == [(9, "start"), (32, "pause"), (36, "resume"), (44, "pause"), (48, "end")]


def test_speculated_audio_is_exactly_the_cut_audio():
    win_s = WINDOW / 16000
    # speech, a hesitant tail (0.4: neither speech nor silence), then silence
    probs = [0.9] * 12 + [0.4] * 3 + [0.0] * 30
    cutter = UtteranceCutter(ScriptedVAD(probs), CutterOptions(min_speech_s=3 * win_s, end_of_utterance_s=0.5,
                                                               partial_every_s=0, preroll_s=2 * win_s))
    got = {}
    for i in range(len(probs)):
        for kind, audio in cutter.feed(np.full(WINDOW, i, np.float32)):  # each window holds its index
            got[kind] = audio
    assert got["pause"] is not None and np.array_equal(got["pause"], got["end"])
    # the start (3rd speech window, i=2) with its 2-window preroll (1, 2) .. the last speech window
    # (11) and 6 windows of tail; the rest of the pause (18..) is left out
    assert np.unique(got["end"]).tolist() == list(range(1, 18))


def test_end_of_utterance_below_100_ms_is_refused():
    with pytest.raises(ValueError, match="end_of_utterance_s"):
        CutterOptions(end_of_utterance_s=0.05)


def test_cutter_cuts_a_monologue_at_max_length():
    cutter = UtteranceCutter(ScriptedVAD([0.9] * 200), CutterOptions(max_utterance_s=1.0, partial_every_s=0))
    kinds = [k for _ in range(200) for k, _ in cutter.feed(np.zeros(WINDOW, np.float32))]
    assert kinds.count("end") >= 5 and kinds[0] == "start"


@pytest.fixture(scope="module")
def asr():
    need_voice_packages()
    from plugins.asr.whisper import WhisperASR, WhisperOptions

    return WhisperASR(WhisperOptions(cutter=CutterOptions(partial_every_s=1.5)), mic_factory=lambda sr, blk: None)


@pytest.fixture(scope="module")
def speech(piper_voice):
    return speech_16k(piper_voice, SENTENCE, pad_s=1.0)


def test_silero_vad_finds_speech_and_not_silence(speech):
    need_voice_packages()
    vad = StreamingVAD()
    probs = np.array([vad(b) for b in blocks(speech)])
    lead = int(0.8 * 16000 / WINDOW)
    assert probs[:lead].max() < 0.3  # the padding is silence
    assert (probs > 0.5).mean() > 0.4  # most of the sentence is speech


def capture_cuts(asr, monkeypatch):
    cuts: list[np.ndarray] = []
    final = asr._final

    def spy(audio, eou_wait_s=0.0):
        cuts.append(audio)
        final(audio, eou_wait_s)
    monkeypatch.setattr(asr, "_final", spy)
    return cuts


@pytest.mark.slow
def test_streamed_mic_audio_is_cut_and_transcribed_exactly(asr, speech, monkeypatch):
    """Mic blocks at real-time pace: partials on the way, the speculation started 0.2 s into the pause
    is the final transcript, and it equals a plain (non-speculative) transcription of the same cut."""
    listener = RecordingListener()
    asr._listener = listener
    asr.gate = lambda: False
    cuts = capture_cuts(asr, monkeypatch)
    hits = asr.spec_hits
    for b in blocks(speech):
        asr.process(b)
        time.sleep(WINDOW / 16000)
    kinds = listener.kinds()
    assert kinds[0] == "start" and kinds[-2:] == ["end", "utterance"]
    assert "partial" in kinds  # a 4.5 s sentence gets partial transcripts on the way
    final = listener.calls[-1][1]
    assert words(final) == words(SENTENCE)
    assert asr.last.speculative and asr.spec_hits == hits + 1
    assert 300 <= asr.last.eou_wait_ms <= 600  # the 0.4 s pause
    # the same blocks through a cutter that does not speculate: the same cut, the same transcript
    asr.cutter = UtteranceCutter(StreamingVAD(), CutterOptions(partial_every_s=0, speculate_s=0))
    plain = RecordingListener()
    asr._listener = plain
    for b in blocks(speech):
        asr.process(b)
    assert not asr.last.speculative
    assert len(cuts) == 2 and np.array_equal(cuts[0], cuts[1])
    assert plain.calls[-1] == ("utterance", final)


@pytest.mark.slow
def test_speech_resuming_in_the_pause_voids_the_speculation(asr, piper_voice, monkeypatch):
    """FAKE VAD scripted over real speech: "What is on the second slide?" (a 0.3 s pause: longer than
    the 0.2 s speculation, shorter than the 0.4 s cut) "Tell me when the build finishes." → one
    utterance with both sentences; the speculation on the first half is never the transcript."""
    a = speech_16k(piper_voice, "What is on the second slide?", pad_s=0.0)
    b = speech_16k(piper_voice, "Tell me when the build finishes.", pad_s=0.0)
    gap, tail = np.zeros(int(0.3 * 16000), np.float32), np.zeros(16000, np.float32)
    audio = np.concatenate([a, gap, b, tail])
    n = lambda x: -(-len(x) // WINDOW)  # noqa: E731 - windows covering x
    probs = [0.9] * n(a) + [0.0] * (len(gap) // WINDOW) + [0.9] * n(b) + [0.0] * 40
    asr.cutter = UtteranceCutter(ScriptedVAD(probs), CutterOptions(partial_every_s=0))
    listener = RecordingListener()
    asr._listener = listener
    asr.gate = lambda: False
    seen: list[int] = []
    transcribe = asr.worker._transcribe
    monkeypatch.setattr(asr.worker, "_transcribe", lambda x: seen.append(len(x)) or transcribe(x))
    cuts = capture_cuts(asr, monkeypatch)
    misses = asr.spec_misses
    for blk in blocks(audio):
        asr.process(blk)
        time.sleep(WINDOW / 16000)
    assert [k for k, _ in listener.calls] == ["start", "end", "utterance"]
    text = listener.calls[-1][1]
    assert words(text) == words("What is on the second slide? Tell me when the build finishes.")
    assert asr.spec_misses == misses + 1 and asr.last.speculative  # first voided, second used
    assert seen and seen[0] < len(cuts[0])  # the void one covered the first sentence only
    assert text == asr.transcribe(cuts[0])
    asr.cutter = UtteranceCutter(StreamingVAD(), asr.o.cutter)


def test_gated_mic_hears_nothing(asr, speech):
    listener = RecordingListener()
    asr._listener = listener
    asr.gate = lambda: True  # the app is speaking: this is our own voice coming back
    for b in blocks(speech):
        asr.process(b)
    assert listener.calls == []
    asr.gate = lambda: False


def test_push_to_talk_brackets_the_utterance(asr, speech):
    listener = RecordingListener()
    asr._listener = listener
    asr.o.push_to_talk = True
    try:
        for b in blocks(speech)[:10]:
            asr.process(b)  # not pressed: ignored
        asr.press()
        for b in blocks(speech):
            asr.process(b)
        asr.release()
    finally:
        asr.o.push_to_talk = False
    assert listener.kinds() == ["start", "end", "utterance"]
    assert words(listener.calls[-1][1]) == words(SENTENCE)


def test_mic_level_is_the_recent_rms_in_dbfs(asr):
    from plugins.asr.whisper import LEVEL_FLOOR_DB

    listener, asr._listener = asr._listener, None  # level only: no utterance handling
    try:
        t = np.arange(16000) / 16000
        sine = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # RMS 0.5/√2 → -9.03 dBFS
        for b in blocks(sine[:8000]):
            asr.process(b)
        assert asr.level() == pytest.approx(-9.03, abs=0.05)
        for b in blocks(np.zeros(4000, np.float32)):  # 0.25 s of silence: only the last ~0.1 s counts
            asr.process(b)
        assert asr.level() == LEVEL_FLOOR_DB
        for b in blocks(sine[:8000] * 0.01):  # 40 dB quieter
            asr.process(b)
        assert asr.level() == pytest.approx(-49.03, abs=0.05)
        time.sleep(0.6)  # no mic audio for half a second: the level reads as the floor
        assert asr.level() == LEVEL_FLOOR_DB
    finally:
        asr._listener = listener


def test_missing_model_is_one_clear_line(tmp_path):
    from plugins.asr.whisper import find_model

    with pytest.raises(AudioError) as err:
        find_model(str(tmp_path))
    assert err.value.kind == "missing_model" and "Whisper model not found" in str(err.value)


def test_sized_window_gives_the_words_of_the_30_s_window(asr, speech):
    """window_s (encoder sized to the audio) against Whisper's own 30 s window, same model, same audio."""
    assert asr._prompt is not None  # the default takes the sized-window path
    short = asr.transcribe(speech)
    prompt, asr._prompt = asr._prompt, None
    try:
        full = asr.transcribe(speech)  # faster-whisper's transcribe: 30 s window
    finally:
        asr._prompt = prompt
    assert words(short) == words(full) == words(SENTENCE)
