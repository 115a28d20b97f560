"""The main window: it lays out the parts and connects them to the controller.

    SessionToolbar (ui/toolbar.py)   source, Start / Pause / Stop, Speak / Listen / push-to-talk
    EventRouter    (ui/router.py)    events → timeline, transcript, memory panel, metrics, banner
    Dialogs        (ui/dialogs.py)   settings, models, export, File → Open session…
    Controller     (app/facade.py)   the only way into the rest of the app

Threading: the session runs on the controller's worker thread; its events arrive through the
EventPump (a queue drained by a QTimer on this thread). Nothing here ever waits on the engine.
"""

from __future__ import annotations

import threading
from enum import StrEnum

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.facade import Controller, RecordedSession, RunOptions, gpu_memory_bytes
from ui.about import window_title
from ui.banner import Banner
from ui.bridge import EventPump
from ui.capture_hotkey import CaptureHotkey
from ui.dialogs import Dialogs
from ui.panels import MemoryPanel, MetricsBar
from ui.permissions import capture_guidance, exclude_from_capture
from ui.router import EventRouter, Views
from ui.sources import to_pixmap
from ui.timeline import TimelineWidget, hms
from ui.toolbar import PUSH_TO_TALK_KEY, SessionToolbar
from ui.transcript import TranscriptView

# Engine messages name the command-line flag; in the window a person needs the place to click instead.
WINDOW_WORDS = (
    ("pass --model DIR", "choose a model in Models… (or Settings → Model)"),
    ("(--url http://host:8000/v1)", "(Settings → Model → Server URL)"),
    ("empty --source", "no source chosen: pick one in the Source list"),
    ("--model", "Settings → Model"),
    ("--url", "Settings → Model → Server URL"),
    ("--source", "the Source list"),
)


def in_window_words(message: str) -> str:
    for cli, window in WINDOW_WORDS:
        message = message.replace(cli, window)
    return message


class State(StrEnum):
    """The window's view of the session; every status line, control and banner follows it."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    VIEWING = "viewing"  # a recorded session is shown (read-only)


LEGEND = (("respond", "#2ecc71", "Presence spoke: a response to what it saw or to your instruction"),
          ("delegate", "#a66bd3", "A hard question handed to the background brain"),
          ("skipped", "#7d8088", "No decision that second (busy, no frame, paused or a backend error)"),
          ("silent", "#34404f", "Presence watched and chose to stay quiet"))


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller, *, gpu_total: int | None = -1, first_run_check: bool = True,
                 thumbnails: bool = True):
        super().__init__()
        self.controller = controller
        self.gpu_total = gpu_memory_bytes() if gpu_total == -1 else gpu_total
        self.setWindowTitle(window_title())
        self.resize(1280, 800)
        self.recorded: RecordedSession | None = None  # set while a past session is shown (read-only)
        self.state = State.IDLE
        self.pump = EventPump(self.on_event, parent=self)
        self._frame_lock = threading.Lock()
        self._frame = None
        self._own_rect: tuple[int, int, int, int] | None = None  # screen pixels; read by the capture thread
        controller.connect(self.pump.put, self.pump.delta, self._on_frame)
        v = controller.settings.voice
        self.toolbar = SessionToolbar(v.speak, v.listen, thumbnails=thumbnails, parent=self)
        self.addToolBar(self.toolbar)
        self._build_views()
        self.router = EventRouter(Views(self.timeline, self.transcript, self.memory, self.metrics, self.banner),
                                  on_error_action=lambda: self.dialogs.open_settings())
        self.dialogs = Dialogs(self, controller, self.gpu_total, self.status.showMessage,
                               events=lambda: self.router.events, stem=lambda: self.router.session_id,
                               on_model_set=self._model_set, on_recorded=self.show_recorded)
        self._connect_toolbar()
        self.capture_key = CaptureHotkey(controller.settings.ui.pause_capture_hotkey, self.toggle_capture, self)
        if controller.settings.capture.source:
            self.toolbar.set_source(controller.settings.capture.source)
        self._ui_timer = QTimer(self)
        self._ui_timer.setInterval(250)
        self._ui_timer.timeout.connect(self._refresh)
        self._ui_timer.start()
        if first_run_check:
            self.check_first_run()

    # --- layout -----------------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.banner = Banner()
        self.preview = QLabel("no frame yet")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 200)
        self.preview.setStyleSheet("background: #101216; color: #8a9099;")
        self.preview.setToolTip("The frame the model saw this second, at the size it saw it")
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
        self.instruction.setToolTip("What Presence should watch for; press Enter to send")
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
        self.timeline.correctionRequested.connect(self.correct)
        zoom = QHBoxLayout()
        zoom.addWidget(QLabel("<b>Decisions</b>"))
        for name, color, tip in LEGEND:
            entry = QLabel(f"<span style='color:{color}'>■</span> {name}")
            entry.setToolTip(tip)
            zoom.addWidget(entry)
        zoom.addStretch(1)
        for label, fn in (("−", lambda: self.timeline.set_zoom(self.timeline.zoom / 2)),
                          ("+", lambda: self.timeline.set_zoom(self.timeline.zoom * 2)),
                          ("Fit", self.timeline.fit_all), ("Live", self.follow_live)):
            b = QPushButton(label)
            b.setFixedWidth(44)
            b.clicked.connect(fn)
            zoom.addWidget(b)
        self.metrics = MetricsBar(gpu_total=self.gpu_total)

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.addWidget(self.banner)
        cl.addWidget(split, 1)
        cl.addLayout(zoom)
        cl.addWidget(self.timeline)
        cl.addWidget(self.metrics)
        self.setCentralWidget(central)
        self.status = self.statusBar()
        self.voice_label = QLabel("")
        self.voice_label.setToolTip("Speech: whether Presence is speaking, and the microphone level while listening")
        self.status.addPermanentWidget(self.voice_label)
        self.status.showMessage("Ready — pick a source and press Start")
        self.state_label = QLabel("idle")
        self.state_label.setToolTip("The session's state: idle, starting, running, paused, finished or failed")
        self.status.addPermanentWidget(self.state_label)

    def _connect_toolbar(self) -> None:
        tb, d = self.toolbar, self.dialogs
        tb.startRequested.connect(lambda: self.start())
        tb.pauseToggled.connect(self.toggle_pause)
        tb.stopRequested.connect(self.stop)
        tb.speakToggled.connect(self.set_speak)
        tb.listenToggled.connect(self.set_listen)
        tb.pushToTalk.connect(self.controller.push_to_talk)
        self.open_act = QAction("Open session…", self, triggered=d.open_session_dialog, shortcut=QKeySequence.Open,
                                toolTip="Show a recorded session (JSONL log or session store), read-only")
        tb.add_actions([
            QAction("Settings…", self, triggered=d.open_settings, toolTip="All settings, saved to config.toml"),
            QAction("Models…", self, triggered=d.open_models, toolTip="Download, choose and delete models"),
            QAction("Export…", self, triggered=d.export_dialog, toolTip="Save this session as JSONL, SRT and Markdown"),
            self.open_act,
        ])
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_act)
        file_menu.addAction(QAction("Export…", self, triggered=d.export_dialog))
        file_menu.addAction(QAction("Watch several sources…", self, triggered=lambda: d.open_streams(),
                                    toolTip="One stream per source on one loaded model: a timeline each, one "
                                    "transcript"))
        file_menu.addAction(QAction("Sessions…", self, triggered=lambda: d.open_sessions(),
                                    toolTip="Recorded sessions: open, delete, apply retention"))
        for key, kind in (("Ctrl+Shift+S", "speak"), ("Ctrl+Shift+Q", "silent"), ("Ctrl+Shift+R", "reply"),
                          ("Ctrl+Shift+Z", "undo")):  # on the second last clicked in the timeline
            act = QAction(self, shortcut=QKeySequence(key),
                          triggered=lambda _c=False, k=kind: self.timeline.selected >= 0
                          and self.correct(self.timeline.selected, k))
            self.addAction(act)
        help_menu = self.menuBar().addMenu("&Help")
        self.first_run_act = QAction("First-run setup…", self, triggered=lambda: d.open_first_run(),
                                     toolTip="Hardware, recommended model, permissions, voice check and source")
        help_menu.addAction(self.first_run_act)
        help_menu.addAction(QAction("About Presence", self, triggered=lambda: d.open_about()))

    # compatibility names used by tests and the CLI
    @property
    def start_act(self) -> QAction:
        return self.toolbar.start_act

    @property
    def stop_act(self) -> QAction:
        return self.toolbar.stop_act

    @property
    def events(self) -> list[dict]:
        return self.router.events

    # --- first run / permissions ----------------------------------------------------------------
    def check_first_run(self) -> None:
        """No model configured and none installed → offer the lite default and the model manager."""
        b = self.controller.settings.backend
        if b.name or b.model:
            return
        if self.controller.backend_name() == "lite":
            text = "No model chosen yet: Presence will use the lite CPU model (SmolLM2 + OCR)."
        else:
            text = ("No model installed: Presence will run the heuristic baseline (scene changes only). "
                    "Choose a model in Models… to do more.")
        self.banner.show_message("info", text, [("Open model manager", self.dialogs.open_models)])

    def prepare_capture(self, spec: str, opts: RunOptions) -> None:
        """Keep this window out of a screen capture: the OS hides it where it can (Windows, macOS);
        elsewhere every captured frame has the window's rectangle masked before anything sees it."""
        if not spec.startswith(("screen", "window")):
            return
        guidance = capture_guidance()
        if self.controller.settings.ui.exclude_self_from_capture:
            excluded, _warning = exclude_from_capture(self)
            if not excluded:
                self._remember_geometry()
                opts.exclude = self.own_rects
        if guidance:
            self.banner.show_message("warn", guidance)

    def own_rects(self) -> list[tuple[int, int, int, int]]:
        """This window's frame on the screen (any thread: a copy kept by move/resize events)."""
        rect = self._own_rect
        return [rect] if rect is not None else []

    def _remember_geometry(self) -> None:
        g = self.frameGeometry()
        self._own_rect = (g.x(), g.y(), g.width(), g.height())

    def moveEvent(self, e):  # noqa: N802 - Qt override
        self._remember_geometry()
        super().moveEvent(e)

    def resizeEvent(self, e):  # noqa: N802 - Qt override
        self._remember_geometry()
        super().resizeEvent(e)

    def showEvent(self, e):  # noqa: N802 - Qt override
        self._remember_geometry()
        super().showEvent(e)

    def hideEvent(self, e):  # noqa: N802 - Qt override
        self._own_rect = None  # a hidden window is not on the screen: nothing to mask
        super().hideEvent(e)

    def _model_set(self) -> None:
        if self.banner.kind == "info":
            self.banner.dismiss()

    # --- controls -------------------------------------------------------------------------------
    def start(self, opts: RunOptions | None = None) -> bool:
        if self.controller.running:
            return False
        spec = self.toolbar.current_source()
        if spec is None:
            return False
        self.controller.settings.capture.source = spec
        self.recorded = None
        self.router.clear()
        if self.banner.kind == "error":
            self.banner.dismiss()
        opts = opts or RunOptions()
        self.prepare_capture(spec, opts)
        self.preview.clear()
        self.preview.setText("no frame yet")
        self.preview_caption.setText("")
        self.controller.start(opts)
        self.set_state(State.STARTING, f"Starting {spec or 'the demo clip'}…")
        return True

    def toggle_pause(self, paused: bool) -> None:
        if self.state not in (State.RUNNING, State.PAUSED):
            return
        self.controller.pause(paused)
        at = hms(max(self.timeline.latest, 0))
        if paused:
            self.set_state(State.PAUSED, f"Paused at {at} — nothing is read from the source; paused seconds are logged as paused")
        else:
            self.set_state(State.RUNNING, f"Running — {at}")

    def toggle_capture(self) -> None:
        """The pause-capture key: pause a running session (nothing is read from the source until resumed),
        resume a paused one."""
        if self.state in (State.RUNNING, State.PAUSED):
            self.toggle_pause(self.state == State.RUNNING)

    def stop(self) -> None:
        if self.controller.running:
            self.controller.stop()
            self.status.showMessage("Stopping…")

    def set_state(self, state: State, message: str) -> None:
        """The one place the window changes state: controls, status line and state label follow."""
        self.state = state
        live = state in (State.STARTING, State.RUNNING, State.PAUSED)
        self.toolbar.set_running(live)
        self.toolbar.pause_act.setChecked(state == State.PAUSED)
        if live:
            self.capture_key.arm()
        else:
            self.capture_key.disarm()
        self.state_label.setText(state.value)
        self.status.showMessage(message)

    def set_speak(self, on: bool) -> None:
        on = self.controller.set_speak(on)
        self.toolbar.speak_act.setChecked(on)

    def set_listen(self, on: bool) -> None:
        on = self.controller.set_listen(on)
        self.toolbar.listen_act.setChecked(on)

    def correct(self, t: int, kind: str, text: str | None = None) -> bool:
        """A lesson for training on second ``t``: should have spoken (optional reply), should have stayed
        silent, a better reply, or undo. Stored beside the session's decisions, shown on the timeline."""
        if kind in ("speak", "reply") and text is None:
            label = "What should Presence have said? (optional)" if kind == "speak" else "The better reply:"
            text, ok = QInputDialog.getText(self, f"Correction at {hms(t)}", label)
            if not ok:
                return False
        try:
            marks = self.controller.correct(t, kind, text or "")
        except ValueError as exc:  # CorrectionError: one line, nothing lost
            self.banner.show_message("warn", str(exc))
            return False
        self.timeline.set_corrections(marks)
        self.status.showMessage("Correction undone" if kind == "undo" else
                                f"Correction stored for {hms(t)} — used by presence train export")
        return True

    def follow_live(self) -> None:
        self.timeline.follow = True
        self.timeline.set_zoom(self.timeline.zoom)

    def send_instruction(self) -> None:
        text = self.instruction.text().strip()
        if not text:
            return
        self.instruction.clear()
        if self.controller.submit_query(text):
            self.status.showMessage(f"Instruction sent: {text}")
        else:
            self.start(RunOptions(query=text))
            self.status.showMessage(f"Started with the instruction: {text}")

    def keyPressEvent(self, e):  # noqa: N802 - Qt override
        if e.key() == QKeySequence(PUSH_TO_TALK_KEY)[0].key() and not e.isAutoRepeat():
            self.controller.push_to_talk(True)
        super().keyPressEvent(e)

    def keyReleaseEvent(self, e):  # noqa: N802 - Qt override
        if e.key() == QKeySequence(PUSH_TO_TALK_KEY)[0].key() and not e.isAutoRepeat():
            self.controller.push_to_talk(False)
        super().keyReleaseEvent(e)

    # --- events (GUI thread, from the pump) -----------------------------------------------------
    def on_event(self, ev: dict) -> None:
        if ev.get("type") == "_runner":
            return self._on_runner(ev)
        self.router.route(ev)

    def _on_runner(self, ev: dict) -> None:
        state = ev.get("state")
        if state == "notice":  # an optional part (voice, brain) is off: say why, keep going
            self.banner.show_message("warn", str(ev.get("message", "")).removeprefix("presence: "))
            return
        if state == "running":
            self.set_state(State.RUNNING, f"Running session {ev.get('session', '')}")
            return
        if state == "failed":
            self.banner.show_message("error", f"Could not start: {in_window_words(str(ev.get('message', '')))}",
                                     [("Settings…", self.dialogs.open_settings), ("Models…", self.dialogs.open_models)])
            self.set_state(State.FAILED, "Not running — fix the problem above and press Start")
        elif state == "ended":
            seconds = self.timeline.latest + 1
            said = len(self.transcript.texts("response"))
            if ev.get("error"):
                self.set_state(State.FAILED, f"Stopped after {seconds} s by a {ev.get('where')} error: {ev['error']}")
            else:
                self.set_state(State.FINISHED, f"Finished — {seconds} s watched, {said} responses")
            if self.preview_caption.text():
                self.preview_caption.setText(self.preview_caption.text().split(" — ")[0] + " — the last frame seen")

    def show_recorded(self, recorded: RecordedSession) -> None:
        """Show a past session exactly as recorded (read-only: nothing is written back)."""
        if self.controller.running:
            self.controller.stop()
        self.router.clear()
        for ev in recorded.events:
            self.router.route(ev)
        self.recorded = recorded
        self.timeline.set_corrections(self.controller.corrections())
        self.set_state(State.VIEWING, f"Recorded session {recorded.session} ({recorded.seconds} s) — read-only")

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
        speaking, level = self.controller.voice_status()
        parts = ["Speaking…" if speaking else ""]
        if level is not None:
            parts.append(f"Mic {level:.0f} dB")
        self.voice_label.setText("   ".join(p for p in parts if p))
        if self.state == State.RUNNING and self.timeline.latest >= 0:
            self.status.showMessage(f"Running — {hms(self.timeline.latest)} — {self.pump.pending()} events queued")

    def closeEvent(self, e):  # noqa: N802 - Qt override
        self.capture_key.disarm()
        self.controller.stop()
        self.controller.join(timeout=2.0)  # bounded: a stuck backend must not hang closing
        self.pump.stop()
        super().closeEvent(e)
