"""Fakes for engine tests (named as fakes): a frame source from arrays and a scripted backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from engine.backends.base import Backend, BackendConfig, BackendStats
from engine.context import ChunkPrefix, Turn
from engine.frames import Frame
from engine.source import FrameSource, SourceError


class ArraySource(FrameSource):
    """FAKE source: yields given (t, rgb) frames; optionally fails after ``fail_after`` frames."""

    live = False

    def __init__(self, frames: list[tuple[float, np.ndarray]], fail_after: int | None = None):
        self._frames = frames
        self.fail_after = fail_after
        self.label = "array"

    def open(self) -> None:
        pass

    def frames(self) -> Iterator[Frame]:
        for i, (t, rgb) in enumerate(self._frames):
            if self.fail_after is not None and i >= self.fail_after:
                raise SourceError("decoding failed (fake)")
            yield Frame(rgb, t, "array", i)


def solid(value: int, size=(48, 64)) -> np.ndarray:
    return np.full((*size, 3), value, dtype=np.uint8)


class ScriptedBackend(Backend):
    """FAKE backend: answers from a script {tick: raw text}, silence otherwise; records every call."""

    name = "scripted"

    def __init__(self, script: dict[int, str] | None = None, delay_s: float = 0.0, wants_frames: bool = True):
        self.script = script or {}
        self.delay_s = delay_s
        self.wants_frames = wants_frames
        self.turns: list[Turn] = []
        self.prefixes: list[ChunkPrefix] = []
        self.commits: list[str] = []
        self._t = -1
        self.busy = threading.Event()

    def load(self, config: BackendConfig) -> None:
        pass

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self.prefixes.append(prefix)

    def observe(self, turn: Turn) -> None:
        self.turns.append(turn)
        self._t = turn.t

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        if self.delay_s:
            self.busy.set()
            time.sleep(self.delay_s)
            self.busy.clear()
        yield self.script.get(self._t, "</silence>")

    def commit(self, text: str) -> None:
        self.commits.append(text)

    def stats(self) -> BackendStats:
        return BackendStats(tokens_context=len(self.turns) * 10, tokens_new=10)
