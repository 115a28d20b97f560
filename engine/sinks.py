"""Durable sinks are not best-effort: what happens when the log or the store cannot write.

A :class:`GuardedSink` wraps one durable sink (``JsonlLog`` or ``SqliteStore``) on the bus. Events
that cannot be written are kept, in order, and retried before every later event, so nothing is
written out of order and no hole is left when writing works again.

    stop (default)  the first failure ends the session cleanly: ``on_stop(message)`` is called once,
                    the session writes an ``error`` event wherever it still can and exits non-zero;
                    the held events are tried once more when the sink closes.
    wait            the session goes on; events are held (at most ``buffer_s`` seconds of stream time)
                    and retried every ``retry_s``; when space returns they are written in order.
                    A full buffer ends the session as in ``stop`` mode.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from engine.events import Event
from engine.log import SinkError
from engine.options import setting


@dataclass
class StorageOptions:
    """``[storage]``: what the session does when its log or store cannot write."""

    on_write_error: Literal["stop", "wait"] = setting(
        "stop", "stop: end the session cleanly (exit 5) | wait: hold events in memory and retry until space returns")
    buffer_s: float = setting(600.0, "wait mode: seconds of events held in memory before the session ends",
                              ge=10.0, le=86400.0)
    retry_s: float = setting(2.0, "wait mode: seconds between two retries", ge=0.1, le=600.0)
    keep_days: float = setting(0.0, "delete recorded sessions older than this many days when a session starts "
                                    "(0 = keep them)", ge=0.0)
    max_gb: float = setting(0.0, "keep the recorded sessions under this many GB, oldest deleted first (0 = no limit)",
                            ge=0.0)
    encrypt: bool = setting(
        False, "encrypt new session stores with SQLCipher (pip install 'presence[encrypt]'); the key is kept in the "
               "OS keyring, or in a 0600 .presence-store.key beside the stores when there is no keyring")
    keep_frames_for_training: bool = setting(
        False, "also store the frames the model saw, so corrections can train a model (more disk; deleted with "
               "the session)")


EVENTS_PER_SECOND_CAP = 50  # hard bound on held events per buffered second (a burst cannot grow memory)


class GuardedSink:
    def __init__(self, sink: Callable[[Event], None], options: StorageOptions,
                 on_stop: Callable[[str], None], on_hold: Callable[[str], None] = lambda _m: None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.sink = sink
        self.options = options
        self.on_stop = on_stop
        self.on_hold = on_hold
        self.monotonic = monotonic
        self.held: deque[Event] = deque()
        self.error = ""  # the first failure's one line
        self.stopped = False
        self.written = 0
        self._next_try = 0.0
        # Events arrive from several threads (the engine's tick worker, the session loop, the brain): one
        # at a time, or two flushes could both write the same held event (a duplicated second in the store).
        self._lock = threading.RLock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.held.append(event)
            if len(self.held) > 1 and self.monotonic() < self._next_try:  # earlier events wait for the retry
                self._check_bound()
                return
            self.flush()

    def flush(self) -> bool:
        """Write the held events in order; True when nothing is left held."""
        with self._lock:
            return self._flush()

    def _flush(self) -> bool:
        while self.held:
            try:
                self.sink(self.held[0])
            except SinkError as exc:
                self._failed(str(exc))
                return False
            self.held.popleft()
            self.written += 1
        return True

    def _failed(self, message: str) -> None:
        self._next_try = self.monotonic() + self.options.retry_s
        first = not self.error
        self.error = self.error or message
        if self.options.on_write_error == "stop":
            self._stop(message)
        elif first:
            self.on_hold(f"{message} — holding events in memory (up to {self.options.buffer_s:g} s) and retrying")
        self._check_bound()

    def _check_bound(self) -> None:
        if self.options.on_write_error != "wait" or not self.held:
            return
        span = float(self.held[-1].get("t", 0.0)) - float(self.held[0].get("t", 0.0))
        if span > self.options.buffer_s or len(self.held) > EVENTS_PER_SECOND_CAP * self.options.buffer_s:
            self._stop(f"{self.error}; {span:.0f} s of events held, the buffer is full")

    def _stop(self, message: str) -> None:
        if not self.stopped:
            self.stopped = True
            self.on_stop(message)

    def close(self) -> int:
        """One last try; returns how many events could not be written."""
        with self._lock:
            self._next_try = 0.0
            self._flush()
            return len(self.held)
