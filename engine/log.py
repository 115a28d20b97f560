"""Durable event sinks: a JSONL file and a SQLite (WAL) store.

Both write each event as it happens (line flushed / row committed), so a ``kill -9`` mid-session
leaves every completed second on disk. The SQLite store also keeps a full-text index (FTS5) of
everything said, asked and summarised, for "what happened at 10:32?".

    events(id, session, t, type, wall, action, text, json)      one row per event
    events_fts(text)                                            FTS5 over events.text
    sessions(session, started_wall, source, backend, ended_wall)
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import IO

from engine.events import Event, EventType

_TEXT_FIELDS = ("text", "query", "delegate_query", "result", "summary", "message")


def event_text(event: Event) -> str:
    """The searchable text of an event (what was said, asked, answered or summarised)."""
    return " ".join(str(event[k]) for k in _TEXT_FIELDS if event.get(k))


class JsonlLog:
    """Appends one JSON object per line and flushes it; ``--log FILE`` creates or truncates FILE."""

    def __init__(self, path: str | Path, truncate: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w" if truncate else "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(line + "\n")
            self._fh.flush()  # in the OS page cache now: survives the process being killed

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions(
    session TEXT PRIMARY KEY, started_wall TEXT, source TEXT, backend TEXT, ended_wall TEXT);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, session TEXT NOT NULL, t REAL NOT NULL, type TEXT NOT NULL,
    wall TEXT, action TEXT, text TEXT, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_session_t ON events(session, t);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(text, content='events', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS events_ai AFTER INSERT ON events BEGIN
    INSERT INTO events_fts(rowid, text) VALUES (new.id, new.text);
END;
"""


class SqliteStore:
    """The session store. One writer (the session); readers may open the file concurrently (WAL)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        """``readonly`` opens an existing store for reading only (replay): it never writes, not even
        the schema, so a recorded session cannot be changed by looking at it."""
        self.path = Path(path)
        self._lock = threading.Lock()
        if readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process death
        self._db.executescript(_SCHEMA)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._db is None:
                return
            if event["type"] == EventType.SESSION_STARTED:
                self._db.execute(
                    "INSERT OR REPLACE INTO sessions(session, started_wall, source, backend) VALUES (?,?,?,?)",
                    (event["session"], event["wall"], event.get("source", ""), event.get("backend", "")),
                )
            elif event["type"] == EventType.SESSION_ENDED:
                self._db.execute("UPDATE sessions SET ended_wall=? WHERE session=?", (event["wall"], event["session"]))
            self._db.execute(
                "INSERT INTO events(session, t, type, wall, action, text, json) VALUES (?,?,?,?,?,?,?)",
                (
                    event["session"], event["t"], event["type"], event["wall"], event.get("action"),
                    event_text(event), json.dumps(event, ensure_ascii=False, default=str),
                ),
            )

    def events(self, session: str | None = None, type_: str | None = None) -> list[Event]:
        q, args = "SELECT json FROM events WHERE 1=1", []
        if session:
            q += " AND session=?"
            args.append(session)
        if type_:
            q += " AND type=?"
            args.append(type_)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY id", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def search(self, text: str, session: str | None = None, limit: int = 20) -> list[Event]:
        """Full-text search over what was said, asked and summarised (FTS5 query syntax)."""
        q = "SELECT e.json FROM events_fts f JOIN events e ON e.id=f.rowid WHERE events_fts MATCH ?"
        args: list = [text]
        if session:
            q += " AND e.session=?"
            args.append(session)
        q += " ORDER BY rank LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(q, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def sessions(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT session, started_wall, source, backend, ended_wall FROM sessions ORDER BY started_wall"
            ).fetchall()
        keys = ("session", "started_wall", "source", "backend", "ended_wall")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
