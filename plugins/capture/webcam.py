"""Webcam capture through OpenCV (V4L2 on Linux, MSMF/DirectShow on Windows, AVFoundation on macOS).

No camera (or an unplugged one) is one readable line, never a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2

from engine.frames import Frame
from engine.source import FrameSource, SourceError
from plugins.capture._polling import poll_frames


class WebcamSource(FrameSource):
    live = True

    def __init__(self, index: int = 0, fps: float = 2.0, max_failures: int = 10):
        self.index = index
        self.fps = fps
        self.max_failures = max_failures
        self.label = f"webcam:{index}"
        self._cap: cv2.VideoCapture | None = None
        self._stop = threading.Event()
        self._failures = 0

    def open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"no webcam at index {self.index} (not connected, busy, or no permission)")
        self._cap = cap

    def _grab(self):
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self._failures += 1
            if self._failures >= self.max_failures:
                raise SourceError(f"webcam {self.index} stopped delivering frames (unplugged?)")
            return None
        self._failures = 0
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        yield from poll_frames(self._grab, self.fps, self.label, self._stop)

    def close(self) -> None:
        self._stop.set()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
