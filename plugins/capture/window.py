"""Capture one window (``window:TITLE``) by its geometry.

X11: the window is found by title with ``xdotool search --name`` and its geometry read with
``xdotool getwindowgeometry`` each second (so moving the window is followed), then that region of
the screen is grabbed through mss. Other platforms: not supported yet — a clear message says so and
suggests ``screen:N``. Only fixed argument lists are passed to xdotool; no shell is involved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from engine.source import SourceError
from plugins.capture._polling import PolledSource
from plugins.capture.screen import ScreenSource


def _xdotool(*args: str) -> str:
    out = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=5)
    return out.stdout if out.returncode == 0 else ""


def find_window(title: str) -> str | None:
    ids = _xdotool("search", "--onlyvisible", "--name", re.escape(title)).split()
    return ids[0] if ids else None


def list_windows() -> list[str]:
    """Titles of the visible, named top-level windows (X11), each once, in stacking order."""
    titles: list[str] = []
    for win_id in _xdotool("search", "--onlyvisible", "--name", ".").split():
        title = _xdotool("getwindowname", win_id).strip()
        if title and title not in titles:
            titles.append(title)
    return titles


def window_geometry(win_id: str) -> tuple[int, int, int, int] | None:
    out = _xdotool("getwindowgeometry", "--shell", win_id)
    vals = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        return int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"])
    except (KeyError, ValueError):
        return None


class WindowSource(PolledSource):

    def __init__(self, title: str, fps: float = 2.0, exclude=None):
        super().__init__(fps)
        self.title = title
        self.exclude = exclude  # screen rectangles masked out (Presence's own window over the captured one)
        self.label = f"window:{title}"
        self._win: str | None = None
        self._screen: ScreenSource | None = None
        self._geom_checked = 0.0

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "window capture is supported on Linux/X11 only for now; use screen:N"
        if shutil.which("xdotool") is None:
            return False, "window capture needs xdotool (apt install xdotool)"
        return ScreenSource.is_available()

    def open(self) -> None:
        ok, hint = self.is_available()
        if not ok:
            raise SourceError(hint)
        if not os.environ.get("DISPLAY"):
            raise SourceError("window capture needs an X11 display: DISPLAY is not set")
        self._win = find_window(self.title)
        if self._win is None:
            raise SourceError(f"no visible window titled {self.title!r}")
        geom = window_geometry(self._win)
        if geom is None:
            raise SourceError(f"cannot read the geometry of window {self.title!r}")
        self._screen = ScreenSource(region=geom, fps=self.fps, exclude=self.exclude)
        self._screen.open()

    def _grab(self):
        now = time.monotonic()
        if now - self._geom_checked > 1.0:  # follow a moved/resized window, once a second
            self._geom_checked = now
            geom = window_geometry(self._win)
            if geom is None:
                raise SourceError(f"window {self.title!r} was closed")
            left, top, w, h = geom
            self._screen._box = {"left": left, "top": top, "width": w, "height": h}
        return self._screen._grab()

    def _is_open(self) -> bool:
        return self._screen is not None

    def _release(self) -> None:
        if self._screen is not None:
            self._screen.close()
