"""Watch several sources at once (File → Watch several sources…): one stream per source on one loaded model.

    sources (one per line) · important stream · Start / Stop
    ┌ tabs: s1 │ s2 │ … ┐   one TimelineWidget per stream (the same widget as the main window's)
    └────────────────────┘
    combined transcript     one TranscriptView; every entry names its stream ([s2] …)

The streams run on a ``StreamsRunner`` worker thread (app.facade); their events arrive through an
EventPump (a queue drained by a QTimer here), each carrying ``stream``. Nothing here waits on the engine.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.facade import Settings, StreamsRunner
from ui.banner import Banner
from ui.bridge import EventPump
from ui.timeline import TimelineWidget
from ui.transcript import TranscriptView

NAMED_FIELDS = ("text", "summary", "message", "result")  # what the transcript shows of an event


def named(ev: dict) -> dict:
    """The event with its stream's name in front of what the transcript shows."""
    name = ev.get("stream", "")
    out = dict(ev)
    for key in NAMED_FIELDS:
        if out.get(key):
            out[key] = f"[{name}] {out[key]}"
    return out


class StreamsWindow(QMainWindow):
    def __init__(self, settings: Settings, runner: StreamsRunner | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Presence — several sources")
        self.settings = settings
        self.pump = EventPump(self.route, parent=self)
        self.runner = runner or StreamsRunner(self.pump.put)
        self.sources = QPlainTextEdit(placeholderText="one source per line: a video file, screen, webcam:0, rtsp://…")
        self.sources.setMaximumHeight(90)
        self.important = QSpinBox(minimum=0, maximum=64, specialValueText="none")
        self.important.setToolTip("this stream (1 = the first line) is served first when the model is busy")
        self.start_button, self.stop_button = QPushButton("Start"), QPushButton("Stop")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.banner = Banner()
        self.tabs = QTabWidget()
        self.transcript = TranscriptView()
        self.timelines: dict[str, TimelineWidget] = {}

        row = QHBoxLayout()
        row.addWidget(QLabel("Important stream:"))
        row.addWidget(self.important)
        row.addStretch(1)
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        split = QSplitter()
        split.addWidget(self.tabs)
        split.addWidget(self.transcript)
        split.setSizes([600, 400])
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.addWidget(self.banner)
        lay.addWidget(self.sources)
        lay.addLayout(row)
        lay.addWidget(split, 1)
        self.setCentralWidget(body)
        self.resize(1100, 650)

    def source_list(self) -> list[str]:
        return [line.strip() for line in self.sources.toPlainText().splitlines() if line.strip()]

    def start(self, fast: bool = False, duration: float | None = None) -> None:
        sources = self.source_list()
        if not sources:
            self.banner.show_message("error", "Add at least one source, one per line.")
            return
        self.tabs.clear()
        self.timelines.clear()
        self.transcript.clear()
        important = (self.important.value(),) if self.important.value() else ()
        for name in self.runner.start(self.settings, sources, important=important, fast=fast, duration=duration):
            self.timelines[name] = TimelineWidget()
            self.tabs.addTab(self.timelines[name], name)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)

    def stop(self) -> None:
        self.runner.stop()

    def route(self, ev: dict) -> None:
        if ev.get("type") == "_runner":
            return self._runner_state(ev)
        timeline = self.timelines.get(ev.get("stream", ""))
        if timeline is not None:
            timeline.add_event(ev)
        self.transcript.add_event(named(ev))

    def _runner_state(self, ev: dict) -> None:
        state = ev.get("state")
        if state in ("failed", "notice"):
            self.banner.show_message("error" if state == "failed" else "info", ev.get("message", ""))
        if state in ("failed", "ended"):
            errors = ev.get("errors") or {}
            if errors:
                self.banner.show_message("error", "; ".join(f"{n}: {e}" for n, e in errors.items()))
            self.start_button.setEnabled(True)
            self.stop_button.setEnabled(False)

    def closeEvent(self, e):  # noqa: N802 - Qt override
        self.runner.stop()
        self.runner.join(5.0)
        self.pump.stop()
        super().closeEvent(e)


def open_streams_window(settings: Settings, parent=None) -> StreamsWindow:
    """The window behind File → Watch several sources… (the main window passes its controller's settings)."""
    window = StreamsWindow(settings, parent=parent)
    window.show()
    return window
