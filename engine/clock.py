"""Clocks: the session asks a clock for 'now' and waits on it, so tests can run an hour in seconds.

RealClock follows the wall (monotonic) clock. VirtualClock only moves when told to: the session's
``--fast`` mode and every test use it, which makes a scripted conversation deterministic.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock started."""

    def sleep_until(self, t: float) -> None:
        """Block until ``now() >= t`` (a virtual clock jumps there at once)."""

    @property
    def is_virtual(self) -> bool: ...


class RealClock:
    is_virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._stop = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            self._stop.wait(delay)

    def stop(self) -> None:
        """Wake any sleeper early (used when a session is stopped)."""
        self._stop.set()


class VirtualClock:
    """A clock that advances only when the caller advances it (or sleeps until a time)."""

    is_virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, dt: float) -> None:
        with self._lock:
            self._t += dt

    def sleep_until(self, t: float) -> None:
        with self._lock:
            if t > self._t:
                self._t = float(t)
