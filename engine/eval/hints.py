"""A backend whose turns carry perception hints (``engine.context.PerceptionHints``).

The hint is written into the ``Turn`` before the wrapped backend renders it, so the backend's own
turn code (``Turn.text_before_image``) lays it out: the training layout (training/episodes.py), the
eval runner and a live session all show the model the same line.

    Session ──turn──▶ HintedBackend.observe: PerceptionHints.annotate(turn) ──▶ inner.observe(turn)
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.backends.base import Backend, BackendConfig, BackendStats
from engine.context import ChunkPrefix, HintOptions, PerceptionHints, Turn


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


class HintedBackend(WrappedBackend):
    def __init__(self, inner: Backend, options: HintOptions | None = None):
        super().__init__(inner)
        self.hints = PerceptionHints(options)

    def observe(self, turn: Turn) -> None:
        self.inner.observe(self.hints.annotate(turn))

    @property
    def for_streams(self):
        """Several streams on the inner model (engine/streams.py): each of its views hinted too, with its own
        OCR cache. Absent (AttributeError, so ``hasattr`` is False) when the inner backend has no shared model."""
        views_of = self.inner.for_streams
        return lambda n: [HintedBackend(view, self.hints.options) for view in views_of(n)]


def with_hints(backend: Backend, options: HintOptions | None) -> Backend:
    """``backend`` itself when hints are off (or not configured), else wrapped."""
    return HintedBackend(backend, options) if options is not None and options.perception_hints else backend
