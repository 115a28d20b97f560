"""A backend whose turns carry perception hints (``engine.context.PerceptionHints``).

The hint is written into the ``Turn`` before the wrapped backend renders it, so the backend's own
turn code (``Turn.text_before_image``) lays it out: the training layout (training/episodes.py), the
eval runner and a live session all show the model the same line.

    Session ──turn──▶ HintedBackend.observe: PerceptionHints.annotate(turn) ──▶ inner.observe(turn)
"""

from __future__ import annotations

from engine.backends.base import Backend
from engine.backends.wrapped import WrappedBackend
from engine.context import HintOptions, PerceptionHints, Turn


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
