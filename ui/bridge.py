"""Engine → GUI event delivery: a thread-safe queue filled from any thread, drained on the GUI thread by
a QTimer with a time budget, so a burst (an hour of events at once) is spread over several timer
ticks and never stalls the event loop. Streaming deltas are coalesced: only the newest one per drain
reaches the widgets."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from engine.events import EventType

Handler = Callable[[dict], None]
DELTA = "_delta"  # a pseudo-event carrying the text streamed so far for tick t


class EventPump(QObject):
    def __init__(self, handler: Handler, interval_ms: int = 30, budget_ms: float = 10.0, parent=None):
        super().__init__(parent)
        self._q: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._handler = handler
        self.budget_s = budget_ms / 1000.0
        self.delivered = 0
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    # --- any thread ---
    def put(self, event: dict) -> None:
        self._q.put(event)

    def delta(self, t: int, raw: str) -> None:
        """A session delta listener: runs on the engine thread."""
        self._q.put({"type": DELTA, "t": float(t), "raw": raw})

    # --- GUI thread ---
    def pending(self) -> int:
        return self._q.qsize()

    def drain(self) -> int:
        deadline = time.perf_counter() + self.budget_s
        n = 0
        last_delta = None
        while time.perf_counter() < deadline:
            try:
                ev = self._q.get_nowait()
            except queue.Empty:
                break
            if ev.get("type") == DELTA:
                last_delta = ev  # only the newest partial text matters
                continue
            if last_delta is not None and ev.get("type") == EventType.DECISION:
                last_delta = None  # the decision supersedes its own stream
            self._handler(ev)
            n += 1
        if last_delta is not None:
            self._handler(last_delta)
        self.delivered += n
        return n

    def stop(self) -> None:
        self._timer.stop()
