"""Render presence.svg into every size the installers need (run after editing the SVG; the outputs are committed):

    QT_QPA_PLATFORM=offscreen python assets/icons/make_icons.py

PNG 16…1024 (Linux hicolor theme, the window icon), presence.ico (Windows: 16–256), presence.icns (macOS).
Qt's SVG renderer draws the PNGs; Pillow writes the ICO and ICNS containers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)


def render(svg: Path, size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    painter = QPainter(img)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    if not img.save(str(out)):
        raise SystemExit(f"could not write {out}")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    svg = HERE / "presence.svg"
    png_dir = HERE / "png"
    png_dir.mkdir(exist_ok=True)
    for s in SIZES:
        render(svg, s, png_dir / f"presence-{s}.png")
    big = Image.open(png_dir / "presence-1024.png")
    big.save(HERE / "presence.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    big.save(HERE / "presence.icns")
    for p in sorted(HERE.rglob("presence*.*")):
        print(f"{p.relative_to(HERE)}  {p.stat().st_size} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
