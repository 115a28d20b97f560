"""Run by test_gui_xvfb.py in a subprocess on an Xvfb display (QT_QPA_PLATFORM=xcb).

Opens the real window, plays the demo clip, saves screenshots under OUT, then captures that same
display through the app's screen source and prints one JSON line of findings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QApplication

from app.config import Settings
from app.facade import Controller, RunOptions
from ui.main_window import MainWindow


def wait(app, cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.02)
    return False


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    s = Settings()
    s.backend.name = "heuristic"
    s.heuristic.ocr = False
    s.voice.speak = False
    win = MainWindow(Controller(s), first_run_check=False, gpu_total=None)
    win.show()
    result = {"platform": app.platformName()}
    win.start(RunOptions(fast=True, duration=30, query="tell me when the slide changes"))
    result["session_done"] = wait(app, lambda: not win.controller.running and win.pump.pending() == 0
                                  and any(e["type"] == "session_ended" for e in win.events), 30)
    wait(app, lambda: False, 0.5)
    shot = app.primaryScreen().grabWindow(0)  # the real X display, window decorations and all
    shot.save(str(out / "xvfb_display.png"))
    win.grab().save(str(out / "xvfb_window.png"))
    result["cells"] = int(win.timeline.latest + 1)
    # the picker: live screen thumbnails, other windows by title (not Presence's own)
    from PySide6.QtWidgets import QLabel

    other = QLabel("another application")
    other.setWindowTitle("Notes - xvfb test")
    other.resize(300, 200)
    other.show()
    wait(app, lambda: False, 0.5)
    from ui.sources import window_choices

    result["window_choices"] = [c.spec for c in window_choices()]
    win.toolbar.refresh_thumbnails()
    combo = win.toolbar.source_combo
    icon = combo.itemIcon(combo.findData("screen:1"))
    thumb = icon.pixmap(160, 100).toImage()
    result["thumb_std"] = float(np.std([thumb.pixelColor(x, y).lightness() for x in range(0, thumb.width(), 4)
                                        for y in range(0, thumb.height(), 4)])) if not thumb.isNull() else 0.0
    other.close()
    result["screen_choices"] = [c.spec for c in win.toolbar.choices if c.spec.startswith("screen")]
    result["screen_thumbs"] = sum(c.thumb is not None for c in win.toolbar.choices if c.spec.startswith("screen"))

    try:
        from plugins.capture.screen import ScreenSource
    except ImportError as exc:
        result["screen_source"] = f"missing: {exc}"
    else:
        src = ScreenSource(monitor=1, fps=2.0)
        src.open()
        frame = next(iter(src.frames()))
        src.close()
        px = frame.pixels
        result["screen_source"] = "ok"
        result["capture_shape"] = list(px.shape)
        result["capture_std"] = float(np.asarray(px, dtype=np.float32).std())
        from PySide6.QtGui import QImage

        img = QImage(np.ascontiguousarray(px).data, px.shape[1], px.shape[0], 3 * px.shape[1],
                     QImage.Format.Format_RGB888)
        img.copy().save(str(out / "xvfb_screen_source.png"))
        # the app's own window masked out of a capture of its screen (X11 cannot hide it)
        wait(app, lambda: False, 0.3)
        rects = win.own_rects()
        masked = ScreenSource(monitor=1, fps=2.0, exclude=win.own_rects)
        masked.open()
        mpx = next(iter(masked.frames())).pixels
        masked.close()
        if rects:
            x, y, w, h = rects[0]
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, px.shape[1]), min(y + h, px.shape[0])
            result["own_rect"] = [x0, y0, x1 - x0, y1 - y0]
            result["unmasked_window_std"] = float(np.asarray(px[y0:y1, x0:x1], dtype=np.float32).std())
            result["masked_window_std"] = float(np.asarray(mpx[y0:y1, x0:x1], dtype=np.float32).std())
        # the window running a live screen session through the same source
        win.toolbar.set_source("screen:1")
        win.start(RunOptions(duration=3))
        result["live_done"] = wait(app, lambda: not win.controller.running and win.pump.pending() == 0, 20)
        result["live_cells"] = int(win.timeline.latest + 1)
        pm = win.preview.pixmap()
        result["live_preview"] = bool(pm is not None and not pm.isNull())
    win.close()
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
