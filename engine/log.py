"""Durable event sinks: a JSONL file and a SQLite (WAL) store.

Both write each event as it happens (line written / row committed), so a ``kill -9`` mid-session
leaves every completed second on disk. The SQLite store also keeps a full-text index (FTS5) of
everything said, asked and summarised, for "what happened at 10:32?".

A write that fails raises :class:`SinkError` (one line naming the file) and leaves the file as it was
before that event: the log is never cut mid-line, the store never holds half an event. What happens
next is the session's decision (``engine.sinks``): end cleanly, or hold events and retry.
Files are created 0600 in folders created 0700: they hold what was on the screen.

    events(id, session, t, type, wall, action, text, json)      one row per event
    events_fts(text)                                            FTS5 over events.text
    sessions(session, started_wall, source, backend, ended_wall)
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from pathlib import Path

from engine.events import Event, EventType

_TEXT_FIELDS = ("text", "query", "delegate_query", "result", "summary", "message")


def event_text(event: Event) -> str:
    """The searchable text of an event (what was said, asked, answered or summarised)."""
    return " ".join(str(event[k]) for k in _TEXT_FIELDS if event.get(k))


class SinkError(OSError):
    """A durable sink could not write; the message is one line naming the file."""


def private_dir(path: Path) -> None:
    """Create ``path``'s folder (and missing parents) readable by the user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class JsonlLog:
    """Appends one JSON object per line; ``--log FILE`` creates or truncates FILE (0600).

    Each line goes out in ``os.write`` calls on an O_APPEND descriptor (no userspace buffer to lose);
    a write that fails part-way is cut back to the last whole line, so the log stays line-complete."""

    durable = True

    def __init__(self, path: str | Path, truncate: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            raise SinkError(f"cannot write the log {self.path}: it is a directory")
        try:
            private_dir(self.path)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
            self._fd: int | None = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise SinkError(f"cannot write the log {self.path}: {_describe(exc)}") from None
        self._size = os.fstat(self._fd).st_size
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        data = (json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                return
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)  # in the OS page cache now: survives the process being killed
                    view = view[n:]
            except OSError as exc:
                try:
                    os.ftruncate(self._fd, self._size)  # no half line left behind
                except OSError:
                    pass
                raise SinkError(f"cannot write the log {self.path}: {_describe(exc)}") from None
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


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


BUSY_TIMEOUT_MS = 30_000  # another process holding the write lock is waited for, not failed on


class SqliteStore:
    """The session store (0600). One writer (the session); readers may open the file concurrently (WAL).
    Each event is one transaction — the session row goes in with ``session_started`` — so the store
    never holds half an event and a session is never listed without its first second."""

    durable = True

    def __init__(self, path: str | Path, readonly: bool = False):
        """``readonly`` opens an existing store for reading only (replay): it never writes, not even
        the schema, so a recorded session cannot be changed by looking at it."""
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if readonly:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
                return
            if self.path.is_dir():
                raise SinkError(f"cannot open the session store {self.path}: it is a directory")
            private_dir(self.path)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                       timeout=BUSY_TIMEOUT_MS / 1000)
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process death
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SinkError(f"cannot open the session store {self.path}: {_describe(exc)}") from None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._write(event)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except (OSError, sqlite3.Error) as exc:
                raise SinkError(f"cannot write the session store {self.path}: {_describe(exc)}") from None

    def _write(self, event: Event) -> None:
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
