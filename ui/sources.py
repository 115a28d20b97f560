"""What the source picker offers: the demo clip, each screen (with a thumbnail), webcams, a file, a URL.

Screens come from plugins.capture.screen when it is importable and the desktop allows capture;
thumbnails are one grab per monitor, taken when the picker is filled (not continuously)."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtGui import QImage, QPixmap

from ui.permissions import capture_guidance


@dataclass
class SourceChoice:
    label: str
    spec: str  # a --source string; "" = the demo clip; "?file" / "?url" ask the user
    thumb: QPixmap | None = None


def to_pixmap(rgb: np.ndarray, max_w: int = 0) -> QPixmap:
    """RGB uint8 [H, W, 3] → QPixmap (copied, so the array may be reused)."""
    rgb = np.ascontiguousarray(rgb[..., :3])
    if max_w and rgb.shape[1] > max_w:
        h = max(1, int(rgb.shape[0] * max_w / rgb.shape[1]))
        rgb = cv2.resize(rgb, (max_w, h), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(img.copy())


def screen_choices(with_thumbnails: bool = True) -> list[SourceChoice]:
    # mss is imported lazily by the plugin: is_available() says when it is missing
    from plugins.capture.screen import ScreenSource

    ok, _hint = ScreenSource.is_available()
    if not ok or capture_guidance() and sys.platform != "darwin":
        return []
    try:
        monitors = ScreenSource.monitors()
    except Exception:  # noqa: BLE001 - no display / permission: the picker just has no screens
        return []
    out = []
    for i, m in enumerate(monitors[1:], start=1):
        thumb = screen_thumbnail(i) if with_thumbnails else None
        out.append(SourceChoice(f"Screen {i} ({m['width']}×{m['height']})", f"screen:{i}", thumb))
    return out


def screen_thumbnail(monitor: int, max_w: int = 160) -> QPixmap | None:
    """What monitor ``monitor`` shows now (the picker refreshes it each time it opens)."""
    try:
        import mss

        with mss.mss() as sct:
            shot = np.asarray(sct.grab(sct.monitors[monitor]))[..., [2, 1, 0]]  # BGRA → RGB
        return to_pixmap(shot, max_w=max_w)
    except Exception:  # noqa: BLE001 - a thumbnail is optional
        return None


def window_choices(own_title: str = "Presence") -> list[SourceChoice]:
    """Visible top-level windows by title (X11, through xdotool), Presence's own left out."""
    from plugins.capture.window import WindowSource, list_windows

    ok, _hint = WindowSource.is_available()
    if not ok or not os.environ.get("DISPLAY"):
        return []
    return [SourceChoice(f"Window: {title}", f"window:{title}") for title in list_windows() if title != own_title]


def webcam_choices() -> list[SourceChoice]:
    """Cameras with the names the kernel gives them (Linux: /sys/class/video4linux/*/name)."""
    if sys.platform.startswith("linux"):
        out = []
        for dev in sorted(glob.glob("/dev/video*")):
            n = dev[len("/dev/video"):]
            try:
                name = Path(f"/sys/class/video4linux/video{n}/name").read_text().strip()
            except OSError:
                name = ""
            out.append(SourceChoice(f"Webcam {n}" + (f" — {name}" if name else ""), f"webcam:{n}"))
        return out
    return [SourceChoice("Webcam 0", "webcam:0")]


def all_choices(with_thumbnails: bool = True) -> list[SourceChoice]:
    return ([SourceChoice("Demo clip (lecture slides)", "")] + screen_choices(with_thumbnails) + window_choices()
            + webcam_choices() + [SourceChoice("Video file…", "?file"), SourceChoice("Stream URL…", "?url")])
