"""The window's dialogs: settings, model manager, export, and opening a recorded session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from app.facade import Controller, RecordedSession


class Dialogs:
    def __init__(self, parent: QWidget, controller: Controller, gpu_total: int | None,
                 status: Callable[[str], None], events: Callable[[], list[dict]], stem: Callable[[], str],
                 on_model_set: Callable[[], None], on_recorded: Callable[[RecordedSession], None]):
        self.parent = parent
        self.controller = controller
        self.gpu_total = gpu_total
        self.status = status
        self.events = events
        self.stem = stem
        self.on_model_set = on_model_set
        self.on_recorded = on_recorded

    def open_settings(self):
        from ui.settings_dialog import SettingsDialog

        c = self.controller
        dlg = SettingsDialog(c.settings, c.config_path, gpu_total=self.gpu_total, parent=self.parent)
        dlg.open()
        return dlg

    def open_models(self):
        from ui.model_manager import ModelManager

        dlg = ModelManager(parent=self.parent)
        dlg.modelChosen.connect(self.use_model)
        dlg.open()
        return dlg

    def use_model(self, backend: str, model: str) -> None:
        self.controller.use_model(backend, model)
        self.on_model_set()
        self.status(f"Model set: {backend} {model}")

    def export_to(self, directory: str | Path) -> dict:
        return self.controller.export(self.events(), directory, stem=self.stem() or "session")

    def export_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self.parent, "Export session to")
        if d:
            paths = self.export_to(d)
            self.status("Exported " + ", ".join(p.name for p in paths.values()))

    def open_first_run(self):
        """Help → First-run setup…: the same wizard a first launch shows (settings saved on Start/Skip)."""
        from ui.first_run import FirstRunWizard

        c = self.controller
        wizard = FirstRunWizard(c.settings, c.config_path, parent=self.parent)
        wizard.open()
        return wizard

    def open_about(self):
        from ui.about import AboutDialog

        dlg = AboutDialog(parent=self.parent)
        dlg.open()
        return dlg

    def open_streams(self):
        """File → Watch several sources…: a window of its own, one stream per source on one model."""
        from ui.streams_window import open_streams_window

        return open_streams_window(self.controller.settings, parent=self.parent)

    def open_sessions(self):
        """File → Sessions…: the recorded sessions; Open shows one read-only in the window."""
        from ui.sessions_dialog import SessionsDialog

        dlg = SessionsDialog(self.controller, self.open_session, parent=self.parent)
        dlg.open()
        return dlg

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open a recorded session", "",
                                              "Sessions (*.jsonl *.sqlite *.db);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path, session: str | None = None) -> RecordedSession:
        """Show a recorded session (read-only). Raises ReplayError with one line when it cannot."""
        recorded = self.controller.open_recorded(path, session)
        self.on_recorded(recorded)
        return recorded
