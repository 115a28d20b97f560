"""The event stream (DESIGN §6, schema v1) and its fan-out to sinks.

Every event is one flat JSON object: ``{"v":1,"session":…,"t":12.0,"wall":ISO-8601,"type":…,…}``.
The same stream feeds the log file, the SQLite store, the UI and the evaluation harness.
"""

from __future__ import annotations

import datetime as _dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 1
EVENT_TYPES = frozenset(
    {
        "session_started", "decision", "skipped", "query", "utterance", "speech_started",
        "speech_ended", "delegate_started", "delegate_result", "delegate_error", "summary",
        "error", "session_ended", "partial_transcript", "response_delta",
    }
)

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


def new_session_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def make_event(session: str, t: float, type_: str, **fields: Any) -> Event:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    wall = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
    return {"v": SCHEMA_VERSION, "session": session, "t": round(float(t), 3), "wall": wall, "type": type_, **fields}


class EventBus:
    """Fans events out to subscribers. A subscriber that raises is reported once and kept out of
    the way of the others: the log must never lose a line because the UI broke."""

    def __init__(self, session: str | None = None):
        self.session = session or new_session_id()
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self.subscriber_errors: list[str] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    def emit(self, t: float, type_: str, **fields: Any) -> Event:
        event = make_event(self.session, t, type_, **fields)
        with self._lock:
            subs = list(self._subs)
        for fn in subs:
            try:
                fn(event)
            except Exception as exc:  # noqa: BLE001 - one broken subscriber must not stop the others
                self.subscriber_errors.append(f"{getattr(fn, '__qualname__', fn)}: {exc}")
        return event
