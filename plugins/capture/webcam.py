"""Webcam capture through OpenCV (V4L2 on Linux, MSMF/DirectShow on Windows, AVFoundation on macOS).

No camera (or an unplugged one) is one readable line, never a traceback.
"""

from __future__ import annotations

import cv2

from engine.source import SourceError
from plugins.capture._polling import PolledSource


class WebcamSource(PolledSource):

    def __init__(self, index: int = 0, fps: float = 2.0, max_failures: int = 10):
        super().__init__(fps)
        self.index = index
        self.max_failures = max_failures
        self.label = f"webcam:{index}"
        self._cap: cv2.VideoCapture | None = None
        self._failures = 0

    def open(self) -> None:
        if self.index < 0:  # OpenCV's "any camera" (-1) crashes inside its V4L2 backend here
            raise SourceError(f"no webcam at index {self.index}: camera indexes start at 0 (webcam:0)")
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

    def _is_open(self) -> bool:
        return self._cap is not None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
