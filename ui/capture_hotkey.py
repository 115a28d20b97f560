"""The "pause capture" hot-key: one key that pauses and resumes what Presence reads, from anywhere.

While a session runs, the key from ``[ui] pause_capture_hotkey`` is grabbed system-wide
(plugins/hotkey.py, X11) so it works while another application has the focus — the moment a person
is about to type a password somewhere Presence is watching. Where that is not possible (Wayland,
Windows, macOS, a key another program holds) the same key works while Presence's window has the
focus, and the reason is in the action's tooltip. The key press arrives on the hot-key's thread and
is handed to the GUI thread through a queued signal.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from plugins.hotkey import GlobalHotkey, HotkeyError

QT_NAMES = {"ctrl": "Ctrl", "control": "Ctrl", "alt": "Alt", "shift": "Shift", "super": "Meta", "win": "Meta"}


def qt_sequence(spec: str) -> QKeySequence:
    """``"ctrl+alt+p"`` → the QKeySequence Ctrl+Alt+P."""
    return QKeySequence("+".join(QT_NAMES.get(p.strip().lower(), p.strip().upper()) for p in spec.split("+")))


class CaptureHotkey(QObject):
    pressed = Signal()

    def __init__(self, spec: str, on_press: Callable[[], None], window: QWidget):
        super().__init__(window)
        self.spec = spec.strip()
        self.pressed.connect(on_press, Qt.ConnectionType.QueuedConnection)
        self.action = QAction("Pause capture", window, triggered=lambda _c=False: self.pressed.emit())
        self.action.setShortcut(qt_sequence(self.spec) if self.spec else QKeySequence())
        self.action.setEnabled(False)
        window.addAction(self.action)
        self._global: GlobalHotkey | None = None
        self.why_not = ""  # why the key works only inside the window ("" when global or unset)

    @property
    def is_global(self) -> bool:
        return self._global is not None

    def arm(self) -> None:
        """A session started: make the key work (system-wide where the platform allows)."""
        if not self.spec:
            return
        self.action.setEnabled(True)
        if self._global is None:
            available, self.why_not = GlobalHotkey.is_available()
            if available:
                hotkey = GlobalHotkey(self.spec, self.pressed.emit)
                try:
                    hotkey.start()
                    self._global, self.why_not = hotkey, ""
                except HotkeyError as exc:
                    self.why_not = str(exc)
        where = "anywhere on the screen" if self.is_global else f"while this window has the focus ({self.why_not})"
        self.action.setToolTip(f"{self.spec}: pause or resume capture — works {where}")

    def disarm(self) -> None:
        """The session ended: let the key go back to other programs."""
        self.action.setEnabled(False)
        if self._global is not None:
            self._global.close()
            self._global = None
