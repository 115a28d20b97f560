"""Windows kept out of screen captures by title or application (``[capture] exclude_windows``).

A :class:`WindowExclusion` is the ``exclude`` callable of :class:`~plugins.capture.screen.ScreenSource`
and :class:`~plugins.capture.window.WindowSource`: before every grab it returns the screen rectangles
of the visible windows whose title, application class or instance name (X11 ``WM_CLASS``) contains one
of the patterns, case-insensitively — ``"bank"`` masks a browser window titled "My Bank — Statement",
``"keepassxc"`` every KeePassXC window — plus the app's own window where the caller gives one. The
screen source fills those rectangles with flat grey before the frame goes anywhere (model, preview,
log, delegation), so nothing of them can be read.

Each grab asks the X server afresh (one ``xdotool search … getwindowgeometry`` process), so a window
that moves, opens or closes is followed from the next frame. A window's whole rectangle is masked even
where another window covers part of it: masking too much is the safe side. Only X11 is supported
(``xdotool``); elsewhere a configured exclusion refuses to start a screen capture with one line rather
than capture what the user asked to keep out. Fixed argument lists only; no shell is involved.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable

from engine.source import SourceError
from plugins.capture.screen import Rect

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")


def ere_escape(text: str) -> str:
    """``text`` as a literal POSIX extended regular expression (what xdotool's search compiles)."""
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


def parse_geometries(out: str) -> list[Rect]:
    """Rectangles from ``xdotool getwindowgeometry --shell`` output (one WINDOW=… block per window)."""
    rects: list[Rect] = []
    vals: dict[str, str] = {}
    for line in [*out.splitlines(), "WINDOW="]:
        key, _, value = line.partition("=")
        if key == "WINDOW" and vals:
            try:
                rects.append((int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"])))
            except (KeyError, ValueError):
                pass
            vals = {}
        vals[key] = value.strip()
    return rects


class WindowExclusion:
    def __init__(self, patterns: list[str], own: Callable[[], list[Rect]] | None = None):
        self.patterns = [p.strip() for p in patterns if p.strip()]
        self.own = own  # the app's own window, where the OS cannot hide it
        self._regex = "|".join(f"({ere_escape(p)})" for p in self.patterns)

    def check(self) -> None:
        """Raise :class:`SourceError` (one line) when exclusions are configured but cannot work here."""
        if not self.patterns:
            return
        if not sys.platform.startswith("linux"):
            raise SourceError("[capture] exclude_windows works on Linux/X11 only for now; "
                              "remove it to capture the screen here")
        if shutil.which("xdotool") is None:
            raise SourceError("[capture] exclude_windows needs xdotool (apt install xdotool)")

    def windows(self) -> list[Rect]:
        """The rectangles of the visible windows that match a pattern, now."""
        if not self.patterns:
            return []
        try:
            out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "--class", "--classname",
                                  self._regex, "getwindowgeometry", "--shell", "%@"],
                                 capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            # fail closed: a frame whose exclusions are unknown must not be seen
            raise SourceError(f"cannot find the excluded windows (xdotool: {exc})") from None
        return parse_geometries(out)

    def __call__(self) -> list[Rect]:
        return (list(self.own()) if self.own is not None else []) + self.windows()


def exclusion(patterns: list[str], own: Callable[[], list[Rect]] | None = None):
    """The ``exclude`` callable for a source: ``own`` alone when no patterns are set."""
    excl = WindowExclusion(patterns, own)
    return excl if excl.patterns else own
