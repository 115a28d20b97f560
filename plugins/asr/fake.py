"""FAKE ASR: emits scripted utterances at given stream times, through the same Listener calls the
Whisper plugin makes (speech start → partials → speech end → final transcript)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from engine.speech import Listener


@dataclass
class ScriptLine:
    t: float  # stream time the user starts speaking
    text: str
    duration_s: float = 1.0  # how long they speak; the transcript arrives at t + duration_s


class ScriptedASR:
    name = "scripted"

    def __init__(self, script: list[ScriptLine] | list[tuple[float, str]], now: Callable[[], float],
                 poll_s: float = 0.005):
        self.script = sorted((s if isinstance(s, ScriptLine) else ScriptLine(*s) for s in script),
                             key=lambda s: s.t)
        self.now = now
        self.poll_s = poll_s
        self.emitted: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def is_available() -> tuple[bool, str]:
        return True, ""

    def start(self, listener: Listener) -> None:
        self._thread = threading.Thread(target=self._run, args=(listener,), name="scripted-asr", daemon=True)
        self._thread.start()

    def _wait_until(self, t: float) -> bool:
        while self.now() < t:
            if self._stop.wait(self.poll_s):
                return False
        return True

    def _run(self, listener: Listener) -> None:
        for line in self.script:
            if not self._wait_until(line.t):
                return
            listener.on_speech_start()
            words = line.text.split()
            if len(words) > 1 and self._wait_until(line.t + line.duration_s / 2):
                listener.on_partial(" ".join(words[: len(words) // 2]))
            if not self._wait_until(line.t + line.duration_s):
                return
            listener.on_speech_end()
            listener.on_utterance(line.text)
            self.emitted.append(line.text)

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
