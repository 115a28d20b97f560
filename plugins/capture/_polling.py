"""Shared loop for live sources that are polled at a fixed rate (screen, window, webcam, streams)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from engine.frames import Frame
from engine.source import FrameSource


def poll_frames(grab: Callable[[], np.ndarray | None], fps: float, label: str, stop: threading.Event,
                t0: float | None = None, paused: threading.Event | None = None) -> Iterator[Frame]:
    """Yield a frame every 1/fps seconds until ``stop`` is set. ``grab`` returns RGB or None (skip).
    While ``paused`` is set ``grab`` is not called at all: nothing on the screen is read."""
    period = 1.0 / max(fps, 0.1)
    start = time.monotonic() if t0 is None else t0
    i = 0
    next_at = time.monotonic()
    while not stop.is_set():
        rgb = None if paused is not None and paused.is_set() else grab()
        if rgb is not None:
            yield Frame(pixels=rgb, t=time.monotonic() - start, source=label, index=i)
            i += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # fell behind: do not try to catch up with a burst


class PolledSource(FrameSource):
    """A live source read by polling ``_grab`` every 1/fps seconds until ``close``.

    Subclasses implement ``open``, ``_is_open``, ``_grab`` (RGB, or None to skip a beat) and
    ``_release``; frames() and close() are shared.
    """

    live = True

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._stop = threading.Event()
        self._paused = threading.Event()

    def _is_open(self) -> bool:
        raise NotImplementedError

    def _grab(self) -> np.ndarray | None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the device (called by ``close`` after the polling loop was told to stop)."""

    def frames(self) -> Iterator[Frame]:
        if not self._is_open():
            self.open()
        yield from poll_frames(self._grab, self.fps, self.label, self._stop, paused=self._paused)

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def close(self) -> None:
        self._stop.set()
        self._release()
