"""Regenerate assets/screenshots/ (not a test): the timeline mid-session and the model manager mid-pull.

    QT_QPA_PLATFORM=offscreen python tests/ui/make_screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
OUT = ROOT / "assets" / "screenshots"


def main() -> int:
    from PySide6.QtWidgets import QApplication
    from xvfb_app import wait  # the same event-pumping wait as the Xvfb app test

    from app.config import Settings
    from app.facade import Controller, RunOptions
    from ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp())
    os.environ["PRESENCE_CONFIG_DIR"] = str(tmp / "cfg")
    os.environ["PRESENCE_DATA_DIR"] = str(tmp / "data")
    OUT.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    s = Settings()
    s.backend.name = "heuristic"
    s.voice.speak = False
    win = MainWindow(Controller(s), first_run_check=False, thumbnails=False, gpu_total=None)
    win.resize(1280, 760)
    win.show()
    win.start(RunOptions(fast=True, duration=45, query="tell me when the slide changes"))
    wait(app, lambda: not win.controller.running and win.pump.pending() == 0, 60)
    wait(app, lambda: False, 0.4)
    win.timeline.follow = False
    win.timeline.offset, win.timeline.zoom = 0.0, 26.0
    win.status.showMessage("Running — 0:00:45 — heuristic backend on the demo clip")
    win.grab().save(str(OUT / "timeline.png"))
    legend_tooltip(app, win, OUT / "legend_tooltip.png")
    demo_mid_run(app, s, OUT / "demo_lite_mid_run.png")

    import ui_hub
    from huggingface_hub import constants

    from app.models import ModelStore
    from ui.model_manager import ModelManager

    constants.HF_HUB_OFFLINE = False
    constants.DOWNLOAD_CHUNK_SIZE = 65536
    H = ui_hub.load()
    big = H.HubRepo("Qwen/Qwen3-VL-4B-Instruct", {"config.json": b"{}", "model.safetensors": os.urandom(3 << 20)})
    with H.HubServer([big, H.REPO], throttle_s=0.02) as hub:
        store = ModelStore(cache_dir=tmp / "hub", endpoint=hub.url)
        store.pull(H.REPO.repo_id)
        dlg = ModelManager(store)
        dlg.resize(980, 420)
        dlg.show()
        dlg.select("qwen3-vl-4b")
        dlg.pull_selected()
        wait(app, lambda: 380 < dlg.progress.value() < 700, 60)
        dlg.grab().save(str(OUT / "model_manager.png"))
        dlg.cancel()
        wait(app, lambda: not dlg.busy(), 10)
    from app.models import Hardware

    gib = 1 << 30
    rec = ModelManager(ModelStore(cache_dir=tmp / "hub2"), hardware=Hardware(
        cpu="x86", cores=8, ram_bytes=32 * gib, gpu_name="RTX 4080 (example)", vram_bytes=16 * gib, gpu_kind="cuda"))
    rec.resize(1100, 420)
    rec.show()
    wait(app, lambda: False, 0.3)
    rec.grab().save(str(OUT / "model_manager_recommendation.png"))
    for p in OUT.glob("*.png"):
        print(p, p.stat().st_size)
    return 0


def legend_tooltip(app, win, path: Path) -> None:
    """The window with the tooltip of the legend's "delegate" entry showing (the real QToolTip, grabbed
    and drawn where it appears)."""
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QLabel, QToolTip
    from xvfb_app import wait

    entry = next(w for w in win.findChildren(QLabel) if "delegate" in w.text() and "■" in w.text())
    at = entry.mapToGlobal(entry.rect().bottomLeft())
    QToolTip.showText(at, entry.toolTip(), entry)
    wait(app, lambda: False, 0.3)
    shot = win.grab()
    tip = next((w for w in app.topLevelWidgets() if w.inherits("QLabel") and w.isVisible()
                and w.metaObject().className() == "QTipLabel"), None)
    if tip is not None:
        painter = QPainter(shot)
        painter.drawPixmap(win.mapFromGlobal(tip.pos()), tip.grab())
        painter.end()
    shot.save(str(path))
    QToolTip.hideText()


def demo_mid_run(app, settings, path: Path) -> None:
    """The default CPU companion (lite) on the demo, 35 s in: the transcript holds its slide remarks."""
    from xvfb_app import wait

    from app.facade import Controller, RunOptions
    from ui.main_window import MainWindow

    settings.backend.name = "lite"
    win = MainWindow(Controller(settings), first_run_check=False, thumbnails=False, gpu_total=None)
    win.resize(1280, 760)
    win.show()
    win.start(RunOptions(fast=True, duration=35))
    wait(app, lambda: not win.controller.running and win.pump.pending() == 0, 120)
    wait(app, lambda: False, 0.4)
    win.status.showMessage("Running — 0:00:35 — CPU lite (no download) on the demo clip, no instruction")
    win.grab().save(str(path))
    win.close()


if __name__ == "__main__":
    sys.exit(main())
