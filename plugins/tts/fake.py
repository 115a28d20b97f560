"""FAKE TTS: speaks nothing, records what it would have said, and takes a realistic time doing it.

Duration model: ~14 characters per second (Piper joe speaks 4.56 s for an 80-character sentence),
plus ``first_audio_s`` of synthesis latency before the first sample. ``time_scale`` shrinks both so
a test of a minute of speech runs in a second; ``played_s`` is reported in unscaled seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from engine.speech import UtteranceHandle

CHARS_PER_S = 14.0


@dataclass
class Spoken:
    text: str
    duration_s: float  # how long the whole text would take
    played_s: float = 0.0  # how much of it was "played" before it ended or was interrupted
    interrupted: bool = False
    blocks_after_interrupt: int = 0  # blocks written after interrupt(): must stay 0


class SilentTTS:
    name = "silent"
    sample_rate = 22050

    def __init__(self, time_scale: float = 1.0, first_audio_s: float = 0.05, block_s: float = 0.02,
                 fail_with: str = ""):
        self.time_scale = time_scale
        self.first_audio_s = first_audio_s
        self.block_s = block_s
        self.fail_with = fail_with  # simulate a voice/device failure: speak() raises this
        self.spoken: list[Spoken] = []
        self._lock = threading.Lock()

    @staticmethod
    def is_available() -> tuple[bool, str]:
        return True, ""

    @staticmethod
    def duration_of(text: str) -> float:
        return max(0.3, len(text) / CHARS_PER_S)

    def speak(self, handle: UtteranceHandle) -> None:
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        rec = Spoken(handle.text, self.duration_of(handle.text))
        with self._lock:
            self.spoken.append(rec)
        time.sleep(self.first_audio_s * self.time_scale)
        if not handle.should_play():
            rec.interrupted = True
            return
        handle.mark_first_audio()
        while rec.played_s < rec.duration_s:
            if not handle.should_play():
                rec.interrupted = True
                return
            time.sleep(self.block_s * self.time_scale)
            rec.played_s = min(rec.duration_s, rec.played_s + self.block_s)

    def close(self) -> None:
        pass
