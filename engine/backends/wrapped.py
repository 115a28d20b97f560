"""A backend that passes every call to another one: the base of backends that change one step of it
(``engine.eval.hints.HintedBackend`` annotates turns, ``training.corrections.FrameKeepingBackend`` keeps
frames)."""

from __future__ import annotations

from collections.abc import Iterator

from engine.backends.base import Backend, BackendConfig, BackendStats
from engine.context import ChunkPrefix, Turn


class WrappedBackend(Backend):
    """Every call goes to ``inner``; subclasses change what they need (usually ``observe``)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name, self.wants_frames = inner.name, inner.wants_frames

    def load(self, config: BackendConfig) -> None:
        self.inner.load(config)

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self.inner.start_chunk(prefix)

    def observe(self, turn: Turn) -> None:
        self.inner.observe(turn)

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        return self.inner.decide(max_tokens)

    def commit(self, text: str) -> None:
        self.inner.commit(text)

    def stats(self) -> BackendStats:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str):  # counters, ctx, … of the wrapped backend (reports, tests)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
