"""Cyclic garbage is collected on the GUI thread only, while Qt runs.

Python's cycle collector runs on whichever thread happens to allocate when a generation's threshold trips. In
this app that is often an engine worker (a session being built, a model loading). When the cycle it frees holds
a Qt object (a widget, a signal connection's closure) its C++ destructor then runs off the GUI thread, and
PySide6 crashes the process with a segmentation fault — seen as ``Garbage-collecting`` on a worker thread in the
fault handler's trace. So while a :class:`MainThreadCollector` lives, automatic collection is off and a timer
on the GUI thread does the same threshold checks instead (the pattern PyQt/PySide applications use for this).
Reference counting is untouched: only cycles wait, at most ``interval_ms``.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500  # how long a cycle may wait for collection; gen-0 thresholds trip far more often than that


class MainThreadCollector(QObject):
    """Turns automatic collection off and collects from a timer on the thread that creates it (the GUI's)."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None):
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        """Collect the oldest generation whose allocation count passed its threshold (what CPython does)."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        """Back to automatic collection (after one last collection here, on the GUI thread)."""
        self.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()


_installed: MainThreadCollector | None = None


def install(app: QObject) -> MainThreadCollector:
    """One collector for the application (idempotent); call it on the GUI thread once the QApplication exists."""
    global _installed
    if _installed is None:
        _installed = MainThreadCollector(parent=app)
    return _installed
