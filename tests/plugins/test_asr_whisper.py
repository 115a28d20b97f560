"""Whisper ASR without a device: Piper speech fed block by block through the real Silero VAD and
Whisper tiny.en (FAKE mic = a numpy array), plus the cutter's rules with a FAKE VAD."""

from __future__ import annotations

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


def test_cutter_needs_min_speech_and_ends_after_the_pause():
    win_s = WINDOW / 16000
    opts = CutterOptions(min_speech_s=3 * win_s, end_of_utterance_s=10 * win_s, partial_every_s=0)
    probs = [0.9] * 2 + [0.0] * 5 + [0.9] * 20 + [0.0] * 9 + [0.9] * 3 + [0.0] * 10
    cutter = UtteranceCutter(ScriptedVAD(probs), opts)
    events = []
    for i in range(len(probs)):
        events += [(i, k) for k, _ in cutter.feed(np.zeros(WINDOW, np.float32))]
    # a 2-window click is ignored; speech starts at the 3rd speech window (i=9); the 9-window pause
    # does not end it; ten silent windows after the last speech (i=38) do (i=48)
    assert events == [(9, "start"), (48, "end")]


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


@pytest.mark.slow
def test_streamed_mic_audio_is_cut_and_transcribed_exactly(asr, speech):
    listener = RecordingListener()
    asr._listener = listener
    asr.gate = lambda: False
    for b in blocks(speech):
        asr.process(b)
    kinds = listener.kinds()
    assert kinds[0] == "start" and kinds[-2:] == ["end", "utterance"]
    assert "partial" in kinds  # a 4.5 s sentence gets partial transcripts on the way
    final = listener.calls[-1][1]
    assert words(final) == words(SENTENCE)
    assert asr.last.transcribe_ms > 0 and 600 <= asr.last.eou_wait_ms <= 900  # the 0.7 s pause


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


def test_missing_model_is_one_clear_line(tmp_path):
    from plugins.asr.whisper import find_model

    with pytest.raises(AudioError) as err:
        find_model(str(tmp_path))
    assert err.value.kind == "missing_model" and "Whisper model not found" in str(err.value)
