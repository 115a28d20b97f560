"""A video-file source for the evaluation runner (the engine may not import ``plugins``).

Decodes every frame but converts and yields only the last frame of each stream second: the
session keeps only the latest frame per tick anyway, so the others would be dropped unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2

from engine.frames import Frame
from engine.source import FrameSource, SourceError


class ClipSource(FrameSource):
    live = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.label = str(path)
        self._cap: cv2.VideoCapture | None = None
        self.fps = 0.0

    def open(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not self.path.is_file() or not cap.isOpened():
            raise SourceError(f"cannot open clip {self.path}")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < self.fps < 1000:
            self.fps = 25.0
        self._cap = cap

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        cap, fps = self._cap, self.fps
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        i = 0
        while cap.grab():
            t = i / fps
            last_of_second = n <= 0 or i == n - 1 or int((i + 1) / fps) > int(t)
            if last_of_second:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    raise SourceError(f"decoding failed at {t:.1f}s: {self.path}")
                yield Frame(pixels=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t=t, source=self.label, index=i)
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
