"""Network streams: ``http(s)://`` (MJPEG, HLS, any FFmpeg-readable URL) and ``rtsp://``.

A reader thread keeps only the newest decoded frame (network streams buffer; a slow consumer must
not fall behind real time). Only the URL the user configured is contacted.
"""

from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np

from engine.source import SourceError, redact_url
from plugins.capture._polling import PolledSource


class NetworkStreamSource(PolledSource):

    def __init__(self, url: str, fps: float = 2.0, open_timeout_s: float = 10.0, stall_timeout_s: float = 10.0):
        super().__init__(fps)
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.label = redact_url(url)  # never log credentials
        self._cap: cv2.VideoCapture | None = None
        self._latest: np.ndarray | None = None
        self._latest_at = 0.0
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._ended = threading.Event()

    def open(self) -> None:
        if self.url.startswith("rtsp://"):
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        ms = int(self.open_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open stream {self.label} (unreachable, wrong URL or unsupported format)")
        self._cap = cap
        self._latest_at = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name="stream-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                self._ended.set()
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            with self._lock:
                self._latest, self._latest_at = rgb, time.monotonic()

    def _grab(self):
        with self._lock:
            rgb, self._latest = self._latest, None
            age = time.monotonic() - self._latest_at
        if rgb is None and (self._ended.is_set() or age > self.stall_timeout_s):
            raise SourceError(f"stream {self.label} ended or stalled for {age:.0f}s")
        return rgb

    def _is_open(self) -> bool:
        return self._cap is not None

    def _release(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
