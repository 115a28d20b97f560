"""Shared loop for live sources that are polled at a fixed rate (screen, window, webcam, streams)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from engine.frames import Frame


def poll_frames(grab: Callable[[], np.ndarray | None], fps: float, label: str, stop: threading.Event,
                t0: float | None = None) -> Iterator[Frame]:
    """Yield a frame every 1/fps seconds until ``stop`` is set. ``grab`` returns RGB or None (skip)."""
    period = 1.0 / max(fps, 0.1)
    start = time.monotonic() if t0 is None else t0
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        rgb = grab()
        if rgb is not None:
            yield Frame(pixels=rgb, t=time.monotonic() - start, source=label, index=i)
            i += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # fell behind: do not try to catch up with a burst
