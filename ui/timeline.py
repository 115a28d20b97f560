"""The decision timeline: one cell per second, coloured silent / respond / delegate / skipped.

Incremental by construction: each new second writes ONE pixel per pyramid level (log₂ n levels, where
a level-k pixel covers 2ᵏ seconds and keeps the most important action among them, so a lone response
never disappears when zoomed out). A repaint blits only the visible slice of one level, scaled with
nearest-neighbour, so its cost depends on the widget width, never on the history length (12 h =
43,200 cells paints as fast as 1 minute).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QMenu, QToolTip, QWidget

from engine.events import EventType

# codes are priorities: a zoomed-out cell shows the max code of the seconds it covers
NONE, SILENT, SKIPPED, RESPOND, DELEGATE = 0, 1, 2, 3, 4
ACTION_CODE = {"silence": SILENT, "response": RESPOND, "delegate": DELEGATE}
COLORS = {NONE: QColor("#15181d"), SILENT: QColor("#34404f"), SKIPPED: QColor("#7d8088"),
          RESPOND: QColor("#2ecc71"), DELEGATE: QColor("#a66bd3")}
NAMES = {SILENT: "silent", SKIPPED: "skipped", RESPOND: "respond", DELEGATE: "delegate"}
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def hms(t: float) -> str:
    t = int(t)
    return f"{t // 3600}:{t % 3600 // 60:02d}:{t % 60:02d}"


class _Level:
    """One pyramid level: codes (numpy) and the same codes as RGB pixels in a 1-pixel-high QImage."""

    def __init__(self, cells: int):
        self.codes = np.zeros(cells, dtype=np.uint8)
        self.image = QImage(max(cells, 1), 1, QImage.Format.Format_RGB32)
        self.image.fill(COLORS[NONE])

    def grow(self, cells: int) -> None:
        codes = np.zeros(cells, dtype=np.uint8)
        codes[: len(self.codes)] = self.codes
        self.codes = codes
        image = QImage(cells, 1, QImage.Format.Format_RGB32)
        image.fill(COLORS[NONE])
        p = QPainter(image)
        p.drawImage(0, 0, self.image)
        p.end()
        self.image = image


CORRECTION_COLOR = {"speak": "#f1c40f", "silent": "#e67e22", "reply": "#f1c40f"}
CORRECTION_MENU = (("speak", "Should have spoken here…"), ("silent", "Should have stayed silent"),
                   ("reply", "Better reply…"))


class TimelineWidget(QWidget):
    secondClicked = Signal(int)
    correctionRequested = Signal(int, str)  # (second, "speak" | "silent" | "reply" | "undo")
    AXIS_H = 16
    SPAN_H = 12

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setMinimumHeight(70)
        self.zoom = 6.0  # pixels per second
        self.offset = 0.0  # first visible second
        self.follow = True
        self.latest = -1
        self._capacity = 4096
        self._levels: list[_Level] = []
        self._info: dict[int, tuple] = {}  # t -> (code, text, latency dict | reason)
        self.spans: list[list] = []  # [start_t, end_t | None, query, status]
        self.cells_painted = 0
        self.corrections: dict[int, str] = {}  # second -> kind, drawn as a mark above the cell
        self.selected = -1  # the second last clicked (keyboard corrections apply to it)
        self._build_levels()

    # --- data -----------------------------------------------------------------------------------
    def _build_levels(self) -> None:
        self._levels = []
        cells, k = self._capacity, 0
        while True:
            self._levels.append(_Level(cells))
            if cells == 1:
                break
            cells = (cells + 1) // 2
            k += 1

    def _ensure(self, t: int) -> None:
        if t < self._capacity:
            return
        while self._capacity <= t:
            self._capacity *= 2
        cells = self._capacity
        for i, lvl in enumerate(self._levels):
            lvl.grow(max(cells >> i, 1))
        while len(self._levels[-1].codes) > 1:
            top = _Level((len(self._levels[-1].codes) + 1) // 2)
            below = self._levels[-1].codes
            for j in range(len(top.codes)):
                c = int(below[2 * j: 2 * j + 2].max())
                if c:
                    top.codes[j] = c
                    top.image.setPixelColor(j, 0, COLORS[c])
            self._levels.append(top)

    def set_cell(self, t: int, code: int) -> None:
        """Record second ``t``: one pixel per level, stopping where a coarser cell already shows as much."""
        if t < 0:
            return
        self._ensure(t)
        lvl0 = self._levels[0]
        lvl0.codes[t] = code
        lvl0.image.setPixelColor(t, 0, COLORS[code])
        idx = t
        for lvl in self._levels[1:]:
            idx >>= 1
            if lvl.codes[idx] >= code:
                break
            lvl.codes[idx] = code
            lvl.image.setPixelColor(idx, 0, COLORS[code])
        self.cells_painted += 1
        if t > self.latest:
            self.latest = t
            if self.follow:
                self._follow()
        self.update()

    def add_event(self, ev: dict) -> None:
        typ = ev.get("type")
        t = int(float(ev.get("t", 0)))
        if typ == EventType.DECISION:
            code = ACTION_CODE.get(ev.get("action", ""), SILENT)
            self._info[t] = (code, ev.get("text", ""), ev.get("latency_ms") or {})
            self.set_cell(t, code)
            if code == DELEGATE:
                self.spans.append([t, None, ev.get("delegate_query", ""), "running"])
        elif typ == EventType.SKIPPED:
            self._info[t] = (SKIPPED, ev.get("reason", ""), {})
            self.set_cell(t, SKIPPED)
        elif typ in (EventType.DELEGATE_RESULT, EventType.DELEGATE_ERROR):
            for span in self.spans:
                if span[1] is None:
                    span[1] = t
                    span[3] = "done" if typ == EventType.DELEGATE_RESULT else EventType.ERROR
                    break
            self.update()

    def codes(self) -> np.ndarray:
        """The per-second codes recorded so far (index = stream second)."""
        return self._levels[0].codes[: self.latest + 1].copy()

    def clear(self) -> None:
        self.latest = -1
        self._capacity = 4096
        self._info.clear()
        self.spans.clear()
        self.corrections.clear()
        self.selected = -1
        self.offset = 0.0
        self._build_levels()
        self.update()

    # --- view -----------------------------------------------------------------------------------
    def _follow(self) -> None:
        self.offset = max(0.0, self.latest + 1 - self.width() / self.zoom)

    def set_zoom(self, zoom: float, anchor_x: float | None = None) -> None:
        zoom = min(48.0, max(1 / 1024, zoom))
        ax = self.width() / 2 if anchor_x is None else anchor_x
        anchor_t = self.offset + ax / self.zoom
        self.zoom = zoom
        self.offset = max(0.0, anchor_t - ax / zoom)
        if self.follow:
            self._follow()
        self.update()

    def fit_all(self) -> None:
        self.offset = 0.0
        self.set_zoom(max(1 / 1024, self.width() / max(self.latest + 1, 60)), anchor_x=0)

    def scroll_to(self, t: float) -> None:
        self.follow = False
        self.offset = max(0.0, t)
        self.update()

    def resizeEvent(self, e):  # noqa: N802 - Qt override
        if self.follow:
            self._follow()
        super().resizeEvent(e)

    def wheelEvent(self, e):  # noqa: N802
        dy = e.angleDelta().y()
        if e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.set_zoom(self.zoom * (1.25 if dy > 0 else 0.8), anchor_x=e.position().x())
        else:
            step = -dy / 120 * 60 / self.zoom
            self.offset = max(0.0, self.offset + step)
            end_visible = self.offset + self.width() / self.zoom
            self.follow = end_visible >= self.latest + 1
            self.update()

    def second_at(self, x: float) -> int:
        return int(self.offset + x / self.zoom)

    def _best_second(self, x: float) -> int:
        """At coarse zoom a pixel covers many seconds: the most important one answers hover and click."""
        t0 = self.second_at(x)
        span = max(1, int(math.ceil(1 / self.zoom)))
        seg = self._levels[0].codes[t0: min(t0 + span, self.latest + 1)]
        return t0 + int(seg.argmax()) if len(seg) else t0

    def mouseMoveEvent(self, e):  # noqa: N802
        t = self._best_second(e.position().x())
        QToolTip.showText(e.globalPosition().toPoint(), self.tooltip_text(t), self)

    def tooltip_text(self, t: int) -> str:
        info = self._info.get(t)
        if info is None:
            return hms(t)
        code, text, lat = info
        lines = [f"{hms(t)}  {NAMES.get(code, '?')}"]
        if text:
            lines.append(text if code != SKIPPED else f"reason: {text}")
        if lat:
            lines.append("latency ms: " + "  ".join(f"{k} {v:.0f}" for k, v in lat.items()))
        for s in self.spans:
            if s[0] <= t <= (s[1] if s[1] is not None else self.latest):
                lines.append(f"delegate ({s[3]}): {s[2]}")
        return "\n".join(lines)

    def mousePressEvent(self, e):  # noqa: N802
        if e.button() == Qt.MouseButton.LeftButton:
            self.selected = self._best_second(e.position().x())
            self.secondClicked.emit(self.selected)

    def correction_menu(self, t: int) -> QMenu:
        """What a right click on second ``t`` offers: lessons for training (docs/training.md)."""
        menu = QMenu(self)
        for kind, label in CORRECTION_MENU:
            menu.addAction(label, lambda k=kind: self.correctionRequested.emit(t, k))
        menu.addSeparator()
        menu.addAction("Undo the last correction", lambda: self.correctionRequested.emit(t, "undo"))
        return menu

    def contextMenuEvent(self, e):  # noqa: N802 - Qt override
        t = self._best_second(e.pos().x())
        if 0 <= t <= self.latest:
            self.selected = t
            self.correction_menu(t).exec(e.globalPos())

    def set_corrections(self, marks: dict[int, str]) -> None:
        self.corrections = dict(marks)
        self.update()

    # --- painting -------------------------------------------------------------------------------
    def paintEvent(self, _e):  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#101216"))
        w, h = self.width(), self.height()
        band = QRectF(0, self.AXIS_H, w, max(8, h - self.AXIS_H - self.SPAN_H - 4))
        k = 0 if self.zoom >= 1 else int(math.ceil(math.log2(1 / self.zoom)))
        k = min(k, len(self._levels) - 1)
        lvl = self._levels[k]
        cell_s = 1 << k
        first = int(self.offset // cell_s)
        last = min(int((self.offset + w / self.zoom) // cell_s) + 1, (self.latest // cell_s) + 1, len(lvl.codes))
        if last > first:
            x0 = (first * cell_s - self.offset) * self.zoom
            x1 = (last * cell_s - self.offset) * self.zoom
            p.drawImage(QRectF(x0, band.top(), x1 - x0, band.height()), lvl.image,
                        QRectF(first, 0, last - first, 1))
        self._paint_axis(p, w)
        self._paint_spans(p, band.bottom() + 3, w)
        for t, kind in self.corrections.items():  # a small flag above each corrected second
            x = (t + 0.5 - self.offset) * self.zoom
            if 0 <= x <= w:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(CORRECTION_COLOR.get(kind, "#f1c40f")))
                p.drawPolygon([QPointF(x - 4, band.top()), QPointF(x + 4, band.top()), QPointF(x, band.top() + 6)])
        if not self.follow:
            p.setPen(QColor("#c9ccd1"))
            p.drawText(QRectF(w - 90, 0, 86, self.AXIS_H), Qt.AlignmentFlag.AlignRight, "paused view ▸")
        p.end()

    def _paint_axis(self, p: QPainter, w: int) -> None:
        p.setPen(QPen(QColor("#8a9099")))
        f = QFont(p.font())
        f.setPointSizeF(7.5)
        p.setFont(f)
        step = next((s for s in NICE_STEPS if s * self.zoom >= 70), NICE_STEPS[-1])
        t = math.floor(self.offset / step) * step
        end = self.offset + w / self.zoom
        while t <= end:
            x = (t - self.offset) * self.zoom
            p.drawLine(QPointF(x, self.AXIS_H - 4), QPointF(x, self.AXIS_H))
            p.drawText(QPointF(x + 2, self.AXIS_H - 5), hms(t))
            t += step

    def _paint_spans(self, p: QPainter, y: float, w: int) -> None:
        end_view = self.offset + w / self.zoom
        for start, end, _query, status in self.spans:
            stop = end if end is not None else self.latest + 1
            if stop < self.offset or start > end_view:
                continue
            x0 = (start - self.offset) * self.zoom
            x1 = max(x0 + 3, (stop + 1 - self.offset) * self.zoom)
            color = QColor("#a66bd3") if status != "error" else QColor("#e74c3c")
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(color if end is not None else color.darker(140))
            p.drawRoundedRect(QRectF(x0, y, x1 - x0, self.SPAN_H - 4), 3, 3)
