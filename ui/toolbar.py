"""The session toolbar: source picker, Start / Pause / Stop, Speak / Listen / push-to-talk, and the
dialog actions. It only emits signals and shows state; the window decides what they do."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QComboBox, QFileDialog, QInputDialog, QLabel, QPushButton, QToolBar

from ui.sources import all_choices, screen_thumbnail

PUSH_TO_TALK_KEY = "F9"


class SourceCombo(QComboBox):
    """The source list; ``on_open`` runs just before the list drops down (live screen thumbnails)."""

    def __init__(self, on_open=None, parent=None):
        super().__init__(parent)
        self.on_open = on_open

    def showPopup(self):  # noqa: N802 - Qt override
        if self.on_open is not None:
            self.on_open()
        super().showPopup()


class SessionToolbar(QToolBar):
    startRequested = Signal()
    pauseToggled = Signal(bool)
    stopRequested = Signal()
    speakToggled = Signal(bool)
    listenToggled = Signal(bool)
    pushToTalk = Signal(bool)  # pressed / released

    def __init__(self, speak: bool, listen: bool, thumbnails: bool = True, parent=None):
        super().__init__("Session", parent)
        self.setMovable(False)
        self.source_combo = SourceCombo(self.refresh_thumbnails if thumbnails else None)
        self.source_combo.setMinimumWidth(260)
        self.source_combo.setIconSize(self.source_combo.iconSize() * 2)
        self.source_combo.setToolTip("What Presence watches: the demo clip, a screen, a webcam, a file or a URL")
        self.choices = all_choices(with_thumbnails=thumbnails)
        for c in self.choices:
            if c.thumb is not None:
                self.source_combo.addItem(QIcon(c.thumb), c.label, c.spec)
            else:
                self.source_combo.addItem(c.label, c.spec)
        self.addWidget(QLabel(" Source "))
        self.addWidget(self.source_combo)
        self.start_act = QAction("▶ Start", self, triggered=lambda: self.startRequested.emit(),
                                 toolTip="Start watching the chosen source")
        self.pause_act = QAction("Pause", self, checkable=True, triggered=self.pauseToggled.emit,
                                 toolTip="Pause decisions (paused seconds are logged as skipped)")
        self.stop_act = QAction("■ Stop", self, triggered=lambda: self.stopRequested.emit(), toolTip="End the session")
        for a in (self.start_act, self.pause_act, self.stop_act):
            self.addAction(a)
        self.addSeparator()
        self.speak_act = QAction("Speak", self, checkable=True, checked=speak, triggered=self.speakToggled.emit,
                                 toolTip="Speak responses aloud (offline Piper voice); takes effect at once")
        self.listen_act = QAction("Listen", self, checkable=True, checked=listen, triggered=self.listenToggled.emit,
                                  toolTip="Listen to the microphone: what you say becomes the instruction")
        self.addAction(self.speak_act)
        self.addAction(self.listen_act)
        self.ptt = QPushButton("Hold to talk")
        self.ptt.setToolTip(f"Push-to-talk: hold this button or {PUSH_TO_TALK_KEY} while speaking")
        self.ptt.pressed.connect(lambda: self.pushToTalk.emit(True))
        self.ptt.released.connect(lambda: self.pushToTalk.emit(False))
        self.addWidget(self.ptt)
        self.addSeparator()
        self.set_running(False)

    def refresh_thumbnails(self) -> None:
        """Screens show what they show now (a thumbnail taken at start-up would be stale or black)."""
        for i in range(self.source_combo.count()):
            spec = self.source_combo.itemData(i) or ""
            if spec.startswith("screen:"):
                thumb = screen_thumbnail(int(spec.split(":")[1]))
                if thumb is not None:
                    self.source_combo.setItemIcon(i, QIcon(thumb))

    def add_actions(self, actions: list[QAction]) -> None:
        for a in actions:
            self.addAction(a)

    def set_running(self, running: bool) -> None:
        self.start_act.setEnabled(not running)
        self.pause_act.setEnabled(running)
        self.stop_act.setEnabled(running)
        self.source_combo.setEnabled(not running)
        if not running:
            self.pause_act.setChecked(False)

    # --- the source ---------------------------------------------------------------------------------
    def set_source(self, spec: str) -> None:
        for i in range(self.source_combo.count()):
            if self.source_combo.itemData(i) == spec:
                self.source_combo.setCurrentIndex(i)
                return
        self.source_combo.insertItem(1, Path(spec).name if "://" not in spec else spec, spec)
        self.source_combo.setCurrentIndex(1)

    def current_source(self) -> str | None:
        """The chosen ``--source`` string; asks for a file or URL where the entry says so (None = cancelled)."""
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
