"""Recorded sessions, read back: from a JSONL log or from the SQLite session store.

A :class:`RecordedSession` is read-only — its events are exactly what was recorded. ``presence
replay LOG`` prints it as the live terminal timeline did, and the desktop app's File → Open
session… shows it with its timeline, transcript and memory panel (and can export it).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from app.export import load_jsonl
from app.timeline_printer import TimelinePrinter
from engine.events import Event, EventType
from engine.log import SqliteStore, is_store_file


class ReplayError(ValueError):
    """A recorded session cannot be opened; one readable line."""


@dataclass(frozen=True)
class RecordedSession:
    session: str
    source: str
    events: tuple[Event, ...]

    @property
    def seconds(self) -> int:
        return sum(1 for e in self.events if e.get("type") in (EventType.DECISION, EventType.SKIPPED))


def is_store(path: Path) -> bool:
    """True for a session store, plain or encrypted (by its first bytes, not its name)."""
    try:
        return path.is_file() and is_store_file(path)
    except OSError:
        return False


def open_recorded(path: str | Path, session: str | None = None) -> RecordedSession:
    """The session in a JSONL log, or ``session`` (a prefix is enough; default: the newest) in a store."""
    p = Path(path)
    if not p.is_file():
        raise ReplayError(f"no such session file: {p}")
    try:
        if is_store_file(p):
            return _from_store(p, session)
        events = load_jsonl(p)
    except (OSError, UnicodeDecodeError, sqlite3.DatabaseError) as exc:
        raise ReplayError(f"cannot read {p}: {exc}") from None
    if not events:
        raise ReplayError(f"{p} holds no Presence events")
    if session:
        events = [e for e in events if str(e.get("session", "")).startswith(session)]
        if not events:
            raise ReplayError(f"no session {session!r} in {p}")
    started = next((e for e in events if e.get("type") == EventType.SESSION_STARTED), events[0])
    return RecordedSession(str(started.get("session", "")), str(started.get("source", "")), tuple(events))


def _from_store(p: Path, session: str | None) -> RecordedSession:
    db = SqliteStore(p, readonly=True)
    try:
        sessions = db.sessions()
        if not sessions:
            raise ReplayError(f"{p} holds no sessions")
        if session:
            match = [s for s in sessions if s["session"].startswith(session)]
            if not match:
                raise ReplayError(f"no session {session!r} in {p}")
            chosen = match[-1]
        else:
            chosen = sessions[-1]
        events = db.events(chosen["session"])
    finally:
        db.close()
    return RecordedSession(chosen["session"], chosen.get("source") or "", tuple(events))


def print_timeline(recorded: RecordedSession, out: TextIO, show_silence: bool = True) -> None:
    printer = TimelinePrinter(out, show_silence=show_silence)
    for e in recorded.events:
        printer(e)
