"""Video file source (OpenCV/FFmpeg). Frames carry their presentation time as stream time.

A missing, empty or undecodable file fails in ``open`` with one readable line; a file that breaks
partway raises :class:`SourceError` from ``frames`` after every good frame has been yielded.

How reading ends is kept in ``end_reason``: ``finished`` (the natural end of the file), ``closed``
(``close`` was called — the user pressed Stop — which is never an error, wherever the file was), or
``truncated`` (the file ended before the length its container announces: the one-line source error).
``pause()`` holds playback: ``frames`` yields nothing until ``resume()`` (or ``close``), and the
stream time carries on from the frame where it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import cv2

from engine.frames import Frame
from engine.source import FrameSource, SourceError


class VideoFileSource(FrameSource):
    live = False

    def __init__(self, path: str | Path, sample_fps: float = 4.0):
        self.path = Path(path)
        self.label = str(path)
        self.sample_fps = sample_fps  # decode every frame, yield at most this many per second
        self._cap: cv2.VideoCapture | None = None
        self._first = None  # the frame open() decoded, yielded first by frames()
        self.fps = 0.0
        self.frame_count = 0
        self.end_reason = ""  # "" while reading | finished | closed | truncated
        self._lock = threading.Lock()  # close() never releases the decoder in the middle of a grab
        self._closed = threading.Event()
        self._playing = threading.Event()  # cleared while paused
        self._playing.set()

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(f"video file not found: {self.path}")
        if self.path.is_dir():
            raise SourceError(f"not a video file (a directory): {self.path}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"video file is empty: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot decode video file (corrupt or unsupported format): {self.path}")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f"cannot decode video file (no readable frames): {self.path}")
        # The first frame is kept, not re-read: seeking back to 0 fails on a one-frame video or a still
        # image (png/jpg through OpenCV's image reader), which then yielded nothing at all.
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not (0 < self.fps < 1000):
            self.fps = 25.0  # containers without a usable rate: assume PAL-like timing
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # images report a negative
        with self._lock:
            self._cap = cap
            self._first = first
            self._closed.clear()
            self.end_reason = ""

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0

    # --- playback control (any thread) -------------------------------------------------------------
    def pause(self) -> None:
        """Hold playback: ``frames`` blocks before its next frame until ``resume`` or ``close``."""
        self._playing.clear()

    def resume(self) -> None:
        self._playing.set()

    @property
    def paused(self) -> bool:
        return not self._playing.is_set()

    # --- reading ----------------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        step = 1.0 / self.sample_fps if self.sample_fps > 0 else 0.0
        next_t = 0.0
        i = 0
        while True:
            self._playing.wait()  # paused: wait here (close() sets it, so a paused reader still ends)
            with self._lock:
                if self._closed.is_set() or self._cap is None:
                    self.end_reason = "closed"  # Stop: a clean end wherever the file was
                    return
                t = i / self.fps  # frame index timing: robust where containers report odd PTS
                if self._first is not None:  # decoded by open()
                    ok, bgr, self._first = True, self._first, None
                    i += 1
                else:
                    if not self._cap.grab():
                        break
                    i += 1
                    if t + 1e-9 < next_t:
                        continue
                    ok, bgr = self._cap.retrieve()
            if not ok or bgr is None:
                self.end_reason = "truncated"
                raise SourceError(f"video decoding failed at {t:.1f}s: {self.path}")
            next_t = (int(t / step + 1e-9) + 1) * step if step else t  # a fixed grid: no drift
            yield Frame(pixels=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t=t, source=self.label, index=i - 1)
        if self.frame_count and i < self.frame_count - max(2, int(self.fps)):
            self.end_reason = "truncated"
            raise SourceError(f"video ended early at {i / self.fps:.1f}s of {self.duration_s:.1f}s "
                              f"(truncated or corrupt): {self.path}")
        self.end_reason = "finished"

    def close(self) -> None:
        self._closed.set()
        self._playing.set()  # wake a paused reader so it can see the close and end
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
                self._first = None
            if not self.end_reason:
                self.end_reason = "closed"
