"""Acoustic echo cancellation with WebRTC's AEC3, through the maintained ``livekit`` wheel
(``livekit.rtc.AudioProcessingModule``; the same recipe LiveKit's console mode uses).

Feed it what the speaker plays (``far``, from the output callback) and pass the mic through
``near``: the app's own voice is subtracted, the user's stays, so the mic can stay live (and barge
in) while the app speaks on open speakers. Works on 10 ms int16 frames at 16 kHz.
"""

from __future__ import annotations

import importlib.util
import threading
import time

import numpy as np

from plugins.audio import resample

SR = 16000
FRAME = SR // 100  # 10 ms


def _to_i16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


class EchoCanceller:
    def __init__(self, delay_ms: int = 120, noise_suppression: bool = False):
        from livekit import rtc

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, noise_suppression=noise_suppression,
                                              high_pass_filter=True, auto_gain_control=False)
        self.delay_ms = delay_ms  # a hint: AEC3 finds the real delay itself
        self._far = np.zeros(0, np.float32)
        self._near = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self.far_frames = 0
        self.tail_s = 0.3  # how long the room still rings after the speaker went quiet
        self._far_loud_at = -1e9

    @staticmethod
    def is_available() -> tuple[bool, str]:
        if importlib.util.find_spec("livekit") is None:
            return False, "echo cancellation needs the livekit package (pip install livekit)"
        return True, ""

    def _frame(self, x: np.ndarray):
        return self._rtc.AudioFrame(_to_i16(x).tobytes(), SR, 1, FRAME)

    def far(self, samples: np.ndarray, sample_rate: int) -> None:
        """What the speaker is playing now (any rate, mono float32)."""
        x = resample(np.asarray(samples, np.float32), sample_rate, SR)
        with self._lock:
            self._far = np.concatenate([self._far, x])
            while len(self._far) >= FRAME:
                if np.abs(self._far[:FRAME]).max() > 1e-3:
                    self._far_loud_at = time.monotonic()
                self._apm.process_reverse_stream(self._frame(self._far[:FRAME]))
                self._far = self._far[FRAME:]
                self.far_frames += 1

    def near(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mic audio at 16 kHz in → (echo-cancelled, for-transcription) audio out, aligned, in whole
        10 ms frames (the remainder waits for the next block). The second is the raw mic once the
        speaker has been quiet for ``tail_s`` (AEC3's suppressor thins out near speech) and the
        cancelled signal while it plays, so the app's words never enter a transcript."""
        out, raw = [], []
        with self._lock:
            self._near = np.concatenate([self._near, np.asarray(block, np.float32)])
            while len(self._near) >= FRAME:
                mic = self._near[:FRAME]
                frame = self._frame(mic)
                self._near = self._near[FRAME:]
                self._apm.set_stream_delay_ms(self.delay_ms)
                self._apm.process_stream(frame)
                cleaned = np.frombuffer(bytes(frame.data), np.int16).astype(np.float32) / 32768
                out.append(cleaned)
                raw.append(cleaned if time.monotonic() - self._far_loud_at < self.tail_s else mic)
        if not out:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(out), np.concatenate(raw)
