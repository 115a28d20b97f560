"""Piper TTS with the real joe voice, played into a FAKE sink (no device): streaming, interruption,
missing voice. The real device path is in test_voice_audio.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.events import EventBus
from engine.speech import Speaker, UtteranceHandle
from plugins.audio import AudioError
from plugins.tts.piper import find_voice, stream_chunks

TEXT = "Hello from the offline test suite, the quick brown fox jumps over the lazy dog. It is a fine day."


class RecordingSink:
    """FAKE output device: plays fed audio in real time (scaled) from a thread, like Playback."""

    def __init__(self, sample_rate, should_play, on_first_audio, speed=20.0):
        self.sr, self.should_play, self.on_first_audio, self.speed = sample_rate, should_play, on_first_audio, speed
        self.fed: list[tuple[float, int]] = []  # (wall time, samples)
        self.played = 0
        self.blocks_after_stop = 0
        self._q: list[np.ndarray] = []
        self._finished = self._stopped = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._play, daemon=True).start()

    def _play(self):
        block = self.sr // 50
        while True:
            with self._lock:
                if self._stopped:
                    break
                chunk = self._q.pop(0) if self._q else None
                finished = self._finished
            if chunk is None:
                if finished:
                    break
                time.sleep(0.002)
                continue
            for i in range(0, len(chunk), block):
                if self._stopped or not self.should_play():
                    self._done.set()
                    return
                if self.played == 0:
                    self.on_first_audio()
                self.played += len(chunk[i:i + block])
                time.sleep(block / self.sr / self.speed)
        self._done.set()

    def feed(self, samples):
        with self._lock:
            if self._stopped:
                self.blocks_after_stop += 1
            self.fed.append((time.perf_counter(), len(samples)))
            self._q.append(samples)

    def finish(self):
        with self._lock:
            self._finished = True

    def stop(self):
        with self._lock:
            self._stopped = True

    def wait(self, timeout=60.0):
        self._done.wait(timeout)

    def close(self):
        pass


@pytest.fixture
def make_tts(piper_voice):
    sinks: list[RecordingSink] = []

    def factory(sr, should_play, on_first_audio, speed=20.0):
        s = RecordingSink(sr, should_play, on_first_audio, speed)
        sinks.append(s)
        return s

    tts = piper_voice  # one voice load (~2 s) for the whole session
    saved = tts.stream, tts._sink_factory

    def make(stream=True, speed=20.0):
        tts.stream = stream
        tts._sink_factory = lambda sr, **kw: factory(sr, speed=speed, **kw)
        return tts, sinks

    yield make
    tts.stream, tts._sink_factory = saved


def test_stream_chunks_cuts_a_long_first_sentence_at_its_first_clause():
    assert stream_chunks(TEXT) == ["Hello from the offline test suite,",
                                   "the quick brown fox jumps over the lazy dog.", "It is a fine day."]
    assert stream_chunks("Short one. Two!") == ["Short one.", "Two!"]
    assert stream_chunks("   ") == []


def test_first_chunk_plays_while_the_rest_is_synthesized(make_tts):
    tts, sinks = make_tts(stream=True)
    h = UtteranceHandle(TEXT, 0, 0.0, lambda: 0)
    tts.speak(h)
    sink = sinks[-1]
    assert len(sink.fed) == 3  # one feed per chunk, in order
    assert h.first_audio_wall is not None
    assert h.first_audio_wall < sink.fed[-1][0]  # sound started before the last chunk existed
    total = sum(n for _, n in sink.fed)
    assert sink.played == total and total / tts.sample_rate > 4.0
    assert 0 < tts.rtf < 1.5


def test_whole_text_baseline_feeds_once_and_starts_later(make_tts):
    tts, sinks = make_tts(stream=False)
    h = UtteranceHandle(TEXT, 0, 0.0, lambda: 0)
    tts.speak(h)
    assert len(sinks[-1].fed) == 1
    assert h.first_audio_wall >= sinks[-1].fed[0][0]


def test_interrupt_stops_playback_and_nothing_is_fed_after(make_tts):
    tts, sinks = make_tts(stream=True, speed=1.0)  # real-time playback: 6 s of speech
    bus = EventBus("s")
    events = []
    bus.subscribe(events.append)
    sp = Speaker(tts, bus, lambda: 0.0)
    try:
        h = sp.say(TEXT)
        end = time.monotonic() + 10
        while h.first_audio_wall is None and time.monotonic() < end:
            time.sleep(0.01)
        t0 = time.perf_counter()
        sp.barge_in()
        assert h.wait(2.0), "speak() did not return after interrupt"
        assert (time.perf_counter() - t0) < 0.5
        sink = sinks[-1]
        assert sink.played < sum(n for _, n in sink.fed) or len(sink.fed) < 3
        assert sink.blocks_after_stop == 0
        assert h.state == "interrupted"
        assert [e["type"] for e in events if e["type"].startswith("speech")] == ["speech_started", "speech_ended"]
    finally:
        sp.close()


def test_missing_voice_is_one_clear_line(tmp_path):
    with pytest.raises(AudioError) as err:
        find_voice(str(tmp_path / "nope.onnx"))
    assert err.value.kind == "missing_model"
    assert "Piper voice not found" in str(err.value) and "\n" not in str(err.value)


def test_deterministic_voice_repeats_itself_and_the_default_voice_varies(piper_voice):
    from plugins.tts.piper import PiperTTS

    text = "The quick brown fox."
    takes = [np.concatenate(list(piper_voice.synthesize(text))) for _ in range(2)]
    assert np.array_equal(*takes)  # tests that transcribe Piper's speech rely on this
    varied = PiperTTS(sink_factory=lambda *a, **k: None, warm_up=False)
    assert not np.array_equal(*(np.concatenate(list(varied.synthesize(text))) for _ in range(2)))


class FakeOutputStream:
    """FAKE PortAudio output stream: a thread asks the callback for a block every block period (sped
    up ``SPEED``×) and keeps each block's peak. ``hang()`` stops the callbacks while the stream still
    says it is active, the way a killed sound server looks from PortAudio."""

    SPEED = 4.0
    fail_open = False
    opened: list[FakeOutputStream] = []

    def __init__(self, samplerate, blocksize, device, channels, dtype, callback, latency):
        if FakeOutputStream.fail_open:
            raise RuntimeError("Error opening OutputStream: Device unavailable [PaErrorCode -9985]")
        self.sr, self.blocksize, self.callback = samplerate, blocksize, callback
        self.active = self.hung = False
        self.peaks: list[float] = []
        self.aborts = 0
        self._thread: threading.Thread | None = None
        FakeOutputStream.opened.append(self)

    def start(self):
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while self.active and not self.hung:
            out = np.zeros((self.blocksize, 1), np.float32)
            self.callback(out, self.blocksize, None, None)
            self.peaks.append(float(np.abs(out).max()))
            time.sleep(self.blocksize / self.sr / self.SPEED)

    def hang(self):
        self.hung = True

    def abort(self, ignore_errors=True):
        self.active = False
        self.aborts += 1
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)

    stop = abort

    def close(self, ignore_errors=True):
        self.active = False


class FakeSD:
    OutputStream = FakeOutputStream


@pytest.fixture
def fake_device(monkeypatch):
    from plugins import audio

    FakeOutputStream.opened, FakeOutputStream.fail_open = [], False
    monkeypatch.setattr(audio, "sd", lambda: FakeSD)
    yield FakeOutputStream
    for s in FakeOutputStream.opened:
        s.abort()


def tone(seconds, sr=22050):
    return (0.5 * np.sin(np.arange(int(seconds * sr)) * 0.05)).astype(np.float32)


def test_one_stream_serves_every_utterance_and_a_stop_silences_the_next_block(fake_device):
    from plugins.audio import SpeechOutput

    out = SpeechOutput(22050)
    out.open()
    stream = fake_device.opened[0]
    heard = []
    for _ in range(3):  # three utterances, played to the end
        u = out.begin(on_first_audio=lambda: heard.append(len(stream.peaks)))
        u.feed(tone(0.2))
        u.finish()
        u.wait(5)
        assert u.completed
        u.close()
    assert len(fake_device.opened) == 1 and out.opens == 1 and stream.aborts == 0
    assert len(heard) == 3 and stream.active  # it runs (silent) between utterances
    epoch = [0]
    u = out.begin(should_play=lambda: epoch[0] == 0)  # the Speaker's epoch fence
    u.feed(tone(5.0))
    u.finish()
    while u.blocks_played < 3:
        time.sleep(0.005)
    epoch[0] = 1  # a barge-in moved the epoch: no block of it may play after the next callback
    mark = len(stream.peaks)
    u.wait(5)
    assert not u.completed
    late = [p for p in stream.peaks[mark + 1:] if p > 0]
    assert late == [] and u.blocks_played < 0.5 * 5.0 * 50  # control: most of the 5 s never played
    assert stream.aborts == 0
    u.close()  # closing an utterance cut short drops what the device holds: abort + start, same stream
    assert stream.aborts == 1 and stream.active and out.opens == 1
    out.close()
    assert not stream.active and not out.is_open


def test_a_device_that_stops_is_reopened_once_then_one_line(fake_device):
    from plugins.audio import AudioError, SpeechOutput

    out = SpeechOutput(22050)
    out.stall_s, out.reopen_s = 0.3, 0.3
    u = out.begin()  # opens lazily
    u.feed(tone(1.0))
    u.finish()
    while u.blocks_played < 3:
        time.sleep(0.005)
    fake_device.opened[0].hang()  # the device vanished mid-utterance ...
    u.wait(10)  # ... and came back: reopened once, the rest of the utterance plays on the new stream
    assert u.completed and u.reopened and out.opens == 2
    assert sum(p > 0 for p in fake_device.opened[1].peaks) > 5
    u.close()
    u = out.begin()
    u.feed(tone(1.0))
    u.finish()
    while u.blocks_played < 3:
        time.sleep(0.005)
    fake_device.fail_open = True
    fake_device.opened[1].hang()  # gone for good: one reopen fails, one line
    with pytest.raises(AudioError) as err:
        u.wait(10)
    assert err.value.kind == "vanished" and "\n" not in str(err.value)
    assert str(err.value).startswith("voice off: the output device vanished (reopening it failed:")
    assert out.opens == 2
    out.close()
