"""Desktop entry points: ``presence`` (bare) → :func:`main`; ``presence run`` with a display → :func:`run_gui`.

The window gets one :class:`app.facade.Controller`; everything it does to the rest of the app goes
through that object (the import-linter layers contract keeps ``ui`` from importing ``app``).
"""

from __future__ import annotations

import os
import sys

from app.config import ConfigError, Settings, load_settings
from app.facade import Controller, RunOptions


def display_available() -> bool:
    """False on Linux without X11/Wayland and no explicit Qt platform: a window cannot open there."""
    return not (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
                and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"))


def _app():
    from PySide6.QtWidgets import QApplication

    from ui.gc_guard import install

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Presence")
    install(app)  # cycles holding Qt objects are freed on this thread, never on an engine worker's
    return app


def main() -> int:
    if not display_available():
        sys.stderr.write("presence: error: no display for the desktop app; try `presence run --headless`\n")
        return 2
    warning = ""
    try:
        settings = load_settings()
    except ConfigError as exc:
        settings, warning = Settings(), f"Settings file ignored: {exc}"
    app = _app()
    from ui.first_run import FirstRunWizard, should_show_first_run
    from ui.main_window import MainWindow

    start_now = False
    if not warning and should_show_first_run(settings):  # a first launch: from download to a talking companion
        wizard = FirstRunWizard(settings)
        wizard.exec()
        start_now = wizard.started
    win = MainWindow(Controller(settings), first_run_check=not start_now)
    if warning:
        win.banner.show_message("error", warning, [("Settings…", win.dialogs.open_settings)])
    win.show()
    if start_now:
        win.start()
    return int(app.exec())


def run_gui(settings: Settings, args) -> int:
    """Open the window already playing ``settings.capture.source`` (the bundled demo when empty)."""
    app = _app()
    from ui.main_window import MainWindow

    win = MainWindow(Controller(settings, config_path=getattr(args, "config", None)))
    win.show()
    win.toolbar.set_source(settings.capture.source)
    opts = RunOptions(fast=bool(getattr(args, "fast", False)), log=getattr(args, "log", None),
                      store=getattr(args, "store", None), duration=getattr(args, "duration", None),
                      query=getattr(args, "query", None) or "")
    win.start(opts)
    return int(app.exec())
