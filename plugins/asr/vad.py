"""Streaming Silero VAD (the model faster-whisper bundles) and the utterance cutter built on it.

faster_whisper.vad.SileroVADModel scores a whole recording with fresh state; a microphone needs
one 32 ms window at a time with the recurrent state kept, so this drives the same ONNX session
window by window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 512  # samples per VAD window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees


class StreamingVAD:
    """Speech probability per 512-sample window, state carried across calls."""

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def __call__(self, window: np.ndarray) -> float:
        x = np.concatenate([self._context, window.astype(np.float32)])[None, :]  # (1, 576)
        prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = window[-CONTEXT:].astype(np.float32)
        return float(np.asarray(prob).reshape(-1)[0])


@dataclass
class CutterOptions:
    """threshold: speech probability that counts as speech (silence below threshold − 0.15).
    min_speech_s: speech needed before an utterance starts (ignores clicks). end_of_utterance_s:
    the pause that ends it. preroll_s: audio kept from before the start (Silero reacts late).
    max_utterance_s: a monologue is cut here. partial_every_s: a partial every this much new speech.
    speculate_s: after this much pause (at least the kept tail, ~0.19 s) a "pause" event hands out the
    audio the cut will have if the pause lasts, so the transcript can be ready when it does (0 = off).
    end_of_utterance_s is 0.4 s: with speculation the transcript is ready at the cut, so this pause is
    nearly all of the end-of-speech → transcript latency (0.4 s pause → ~0.5 s, the goal). Lower cuts
    split questions at commas (pauses of 0.2-0.4 s); hesitant speakers want 0.6-0.8 s (LiveKit's
    Silero default ends a turn after 0.55 s of silence). Not below 0.1 s."""

    threshold: float = 0.5
    min_speech_s: float = 0.15
    end_of_utterance_s: float = 0.4
    preroll_s: float = 0.3
    max_utterance_s: float = 20.0
    partial_every_s: float = 1.0
    speculate_s: float = 0.2

    def __post_init__(self) -> None:
        if not 0.1 <= self.end_of_utterance_s <= 10.0:
            raise ValueError(f"end_of_utterance_s must be between 0.1 and 10 s, got {self.end_of_utterance_s}")


TAIL = 6  # windows (~0.19 s) of the trailing pause kept: Whisper likes a little silence after the last word


class UtteranceCutter:
    """Feeds on 512-sample windows; returns events ("start" | "partial" | "pause" | "resume" | "end",
    audio or None).

    "pause" (speculation): the speech stopped ``speculate_s`` ago; its audio is exactly what "end"
    will return if no speech window comes before the cut (both are the buffer up to TAIL windows after
    the last speech window, and the buffer only grows), so a transcript of it can stand in for the
    final one. "resume": speech came back after a "pause": that speculation is void.
    ``utterance``: counts utterances, so a speculation is matched to its own utterance.
    ``speech_end_sample``: the sample count (since creation) where the last utterance's speech
    stopped, so callers can measure end-of-speech → transcript latency.
    """

    def __init__(self, vad: Callable[[np.ndarray], float], options: CutterOptions | None = None):
        self.vad = vad
        self.o = options or CutterOptions()
        win_s = WINDOW / SAMPLE_RATE
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, int(self.o.preroll_s / win_s)))
        self._need_speech = max(1, round(self.o.min_speech_s / win_s))
        self._need_silence = max(1, round(self.o.end_of_utterance_s / win_s))
        self._partial_every = max(1, round(self.o.partial_every_s / win_s)) if self.o.partial_every_s > 0 else 0
        self._max = max(1, int(self.o.max_utterance_s / win_s))
        spec = max(TAIL, round(self.o.speculate_s / win_s)) if self.o.speculate_s > 0 else 0
        self._speculate = spec if 0 < spec < self._need_silence else 0  # no point at or after the cut
        self.samples_seen = 0
        self.utterance = 0
        self.speech_end_sample = 0
        self.reset()

    def reset(self) -> None:
        self.speaking = False
        self._buf: list[np.ndarray] = []
        self._speech_run = 0
        self._silence_run = 0
        self._since_partial = 0
        self._voiced = 0  # buffer length (windows) just after the last speech window
        self._paused = False  # a "pause" went out and no speech came since
        self._pre.clear()
        if hasattr(self.vad, "reset"):
            self.vad.reset()

    def feed(self, window: np.ndarray, keep: np.ndarray | None = None) -> list[tuple[str, np.ndarray | None]]:
        """``window`` is what the VAD scores; ``keep`` (default: the same) is what the utterance keeps."""
        self.samples_seen += len(window)
        p = self.vad(window)
        window = window if keep is None else keep
        events: list[tuple[str, np.ndarray | None]] = []
        if not self.speaking:
            self._pre.append(window)
            self._speech_run = self._speech_run + 1 if p >= self.o.threshold else 0
            if self._speech_run >= self._need_speech:
                self.speaking = True
                self._buf = list(self._pre)
                self._pre.clear()
                self._silence_run = self._since_partial = 0
                self._voiced, self._paused = len(self._buf), False
                self.utterance += 1
                self.speech_end_sample = self.samples_seen
                events.append(("start", None))
            return events
        self._buf.append(window)
        if p < self.o.threshold - 0.15:
            self._silence_run += 1
        elif p >= self.o.threshold:
            self._silence_run = 0
            self._voiced = len(self._buf)
            self.speech_end_sample = self.samples_seen
            if self._paused:
                self._paused = False
                events.append(("resume", None))
        self._since_partial += 1
        if self._silence_run >= self._need_silence or len(self._buf) >= self._max:
            audio = np.concatenate(self._buf[: self._voiced + TAIL])
            self.speaking = False
            self._buf, self._speech_run, self._paused = [], 0, False
            events.append(("end", audio))
        elif self._speculate and len(self._buf) - self._voiced == self._speculate:
            self._paused = True
            events.append(("pause", np.concatenate(self._buf[: self._voiced + TAIL])))
        elif self._partial_every and self._since_partial >= self._partial_every and self._silence_run == 0:
            self._since_partial = 0
            events.append(("partial", np.concatenate(self._buf)))
        return events
