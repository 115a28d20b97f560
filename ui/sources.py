"""What the source picker offers: the demo clip, each screen (with a thumbnail), webcams, a file, a URL.

Screens come from plugins.capture.screen when it is importable and the desktop allows capture;
thumbnails are one grab per monitor, taken when the picker is filled (not continuously)."""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass

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
        thumb = None
        if with_thumbnails:
            try:
                import mss

                with mss.mss() as sct:
                    shot = np.asarray(sct.grab(m))[..., [2, 1, 0]]  # BGRA → RGB
                thumb = to_pixmap(shot, max_w=160)
            except Exception:  # noqa: BLE001 - a thumbnail is optional
                thumb = None
        out.append(SourceChoice(f"Screen {i} ({m['width']}×{m['height']})", f"screen:{i}", thumb))
    return out


def webcam_choices() -> list[SourceChoice]:
    if sys.platform.startswith("linux"):
        devs = sorted(glob.glob("/dev/video*"))
        return [SourceChoice(f"Webcam {d[len('/dev/video'):]}", f"webcam:{d[len('/dev/video'):]}") for d in devs]
    return [SourceChoice("Webcam 0", "webcam:0")]


def all_choices(with_thumbnails: bool = True) -> list[SourceChoice]:
    return ([SourceChoice("Demo clip (lecture slides)", "")] + screen_choices(with_thumbnails) + webcam_choices()
            + [SourceChoice("Video file…", "?file"), SourceChoice("Stream URL…", "?url")])
