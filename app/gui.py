"""GUI entry points: ``presence`` (bare) → :func:`main`; ``presence run`` without --headless → :func:`run_gui`."""

from __future__ import annotations

import os
import sys

from app.config import ConfigError, Settings, load_settings


def _no_display() -> bool:
    """Linux without X11/Wayland and no explicit Qt platform: a window cannot open (Qt would abort)."""
    return (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"))


def _app():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Presence")
    return app


def main() -> int:
    if _no_display():
        sys.stderr.write("presence: error: no display for the desktop app; try `presence run --headless`\n")
        return 2
    warning = ""
    try:
        settings = load_settings()
    except ConfigError as exc:
        settings, warning = Settings(), f"Settings file ignored: {exc}"
    app = _app()
    from ui.main_window import MainWindow

    win = MainWindow(settings)
    if warning:
        win.banner.show_message("error", warning, [("Settings…", win.open_settings)])
    win.show()
    return int(app.exec())


def run_gui(settings: Settings, args) -> int:
    """Open the window already playing ``settings.capture.source`` (the bundled demo when empty)."""
    if _no_display():
        os.environ["PRESENCE_FORCE_HEADLESS"] = "1"
        sys.stderr.write("presence: no display, running headless\n")
        from app.cli import cmd_run

        return cmd_run(args)
    app = _app()
    from ui.engine_runner import RunOptions
    from ui.main_window import MainWindow

    win = MainWindow(settings, config_path=getattr(args, "config", None))
    win.show()
    win.set_source(settings.capture.source)
    opts = RunOptions(fast=bool(getattr(args, "fast", False)), log=getattr(args, "log", None),
                      store=getattr(args, "store", None), duration=getattr(args, "duration", None),
                      query=getattr(args, "query", None) or "")
    win.start(opts)
    return int(app.exec())
