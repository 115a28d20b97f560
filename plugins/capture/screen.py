"""Screen capture through mss (X11, Windows, macOS). ``screen:N`` picks monitor N (1 = primary).

Wayland sessions need the desktop portal (see ui/permissions.py); mss then fails with a clear
message rather than a traceback. macOS needs the Screen Recording permission.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable

import numpy as np

from engine.source import SourceError
from plugins.capture._polling import PolledSource


def _no_display_reason() -> str:
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        if os.environ.get("WAYLAND_DISPLAY"):
            return "screen capture on Wayland needs XWayland (DISPLAY) or the desktop portal; DISPLAY is not set"
        return "no display to capture: DISPLAY is not set (run inside a desktop session or Xvfb)"
    return ""


Rect = tuple[int, int, int, int]  # (left, top, width, height) in screen pixels
MASK_GREY = 32  # what an excluded window becomes in the frame: flat, so nothing of it can be read


def mask_rects(rgb: np.ndarray, box: dict, rects: list[Rect]) -> np.ndarray:
    """Fill every part of ``rects`` that falls inside the captured ``box`` with a flat grey (in place)."""
    for left, top, width, height in rects:
        x0, y0 = max(left - box["left"], 0), max(top - box["top"], 0)
        x1, y1 = min(left + width - box["left"], rgb.shape[1]), min(top + height - box["top"], rgb.shape[0])
        if x0 < x1 and y0 < y1:
            rgb[y0:y1, x0:x1] = MASK_GREY
    return rgb


class ScreenSource(PolledSource):
    """A monitor (or a region of the screen). ``exclude`` returns the screen rectangles to mask out of
    every frame before anything sees it — Presence's own window, where the OS cannot hide it."""

    def __init__(self, monitor: int = 1, fps: float = 2.0, region: Rect | None = None,
                 exclude: Callable[[], list[Rect]] | None = None):
        super().__init__(fps)
        self.monitor = monitor
        self.region = region  # (left, top, width, height) in screen pixels, for window capture
        self.exclude = exclude
        self.label = f"screen:{monitor}"
        self._sct = None
        self._box: dict | None = None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("mss") is None:
            return False, "install presence[capture] (mss) for screen capture"
        return True, ""

    @staticmethod
    def monitors() -> list[dict]:
        """The monitors mss sees (index 0 is the union of all of them)."""
        import mss

        with mss.mss() as sct:
            return list(sct.monitors)

    def open(self) -> None:
        reason = _no_display_reason()
        if reason:
            raise SourceError(reason)
        check = getattr(self.exclude, "check", None)  # exclusions that cannot work here refuse to capture
        if check is not None:
            check()
        import mss

        try:
            self._sct = mss.mss()
            monitors = self._sct.monitors
        except Exception as exc:  # noqa: BLE001 - mss raises its own ScreenShotError / XError types
            raise SourceError(f"cannot open the screen for capture: {exc}") from None
        if self.region is not None:
            left, top, width, height = self.region
            self._box = {"left": left, "top": top, "width": width, "height": height}
        elif not 1 <= self.monitor < len(monitors):
            raise SourceError(f"no monitor {self.monitor}: this display has {len(monitors) - 1} monitor(s)")
        else:
            self._box = dict(monitors[self.monitor])
        self._stop.clear()

    def grab(self) -> np.ndarray:
        shot = self._sct.grab(self._box)
        bgra = np.frombuffer(shot.bgra, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        rgb = np.ascontiguousarray(bgra[:, :, 2::-1])  # BGRA → RGB
        if self.exclude is not None:
            mask_rects(rgb, self._box, self.exclude())
        return rgb

    def _is_open(self) -> bool:
        return self._sct is not None

    def _grab(self) -> np.ndarray:
        try:
            return self.grab()
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"screen capture failed: {exc}") from None

    def _release(self) -> None:
        if self._sct is not None:
            try:
                self._sct.close()
            except Exception:  # noqa: BLE001
                pass
            self._sct = None
