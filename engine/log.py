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


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every plain SQLite file


def _cipher():
    """SQLCipher's DB-API module (``presence[encrypt]``: sqlcipher3), or None when not installed."""
    try:
        from sqlcipher3 import dbapi2
    except ImportError:
        return None
    return dbapi2


def _head(path: Path) -> bytes | None:
    """The file's first bytes, as many as SQLite's magic takes; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC))
    except OSError:
        return None


def _looks_encrypted(path: Path) -> bool:
    """A non-empty file that is not plain SQLite: an encrypted store, or not a store at all."""
    head = _head(path)
    return bool(head) and head != SQLITE_MAGIC


def is_store_file(path: Path) -> bool:
    """A session store by its first bytes: plain SQLite, or binary that is not text (a JSONL log, or any
    other text file) — an encrypted store, which only its key can confirm."""
    head = _head(path)
    if head is None:
        return False
    if head == SQLITE_MAGIC:
        return True
    # SQLCipher pages are indistinguishable from random bytes; a log or any other text file reads as text
    # (16 random bytes all look like text with odds of about 1 in 10^7)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return True  # not UTF-8 before the last character the read may have cut: binary
        text = head[:exc.start].decode("utf-8")
    return bool(head) and not all(c.isprintable() or c in "\t\r\n" for c in text)


class SqliteStore:
    """The session store (0600). One writer (the session); readers may open the file concurrently (WAL).
    Each event is one transaction — the session row goes in with ``session_started`` — so the store
    never holds half an event and a session is never listed without its first second.

    ``encrypt`` creates a new store encrypted with SQLCipher (every page, the WAL included; the key
    from ``engine.store_key``); an existing encrypted store is recognised and opened with the key
    wherever it is opened (replay, session lists, ``ask``)."""

    durable = True

    def __init__(self, path: str | Path, readonly: bool = False, encrypt: bool = False):
        """``readonly`` opens an existing store for reading only (replay): it never writes, not even
        the schema, so a recorded session cannot be changed by looking at it."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self.encrypted = False
        cipher = _cipher()
        self._errors: tuple = (sqlite3.Error,) + ((cipher.Error,) if cipher else ())
        try:
            if readonly:
                self._db = self._connect(readonly=True)
                return
            if self.path.is_dir():
                raise SinkError(f"cannot open the session store {self.path}: it is a directory")
            private_dir(self.path)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            if fresh and encrypt:
                from engine.store_key import key_for_new_store

                self._db = self._connect(readonly=False, keys=[key_for_new_store(self.path)])
            else:
                self._db = self._connect(readonly=False)
                if encrypt and not self.encrypted and not fresh:
                    raise SinkError(f"cannot open the session store {self.path}: it is not encrypted and "
                                    "[storage] encrypt is on — give a new store file")
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process death
            self._db.executescript(_SCHEMA)
        except (OSError, *self._errors) as exc:
            if isinstance(exc, SinkError):
                raise
            raise SinkError(f"cannot open the session store {self.path}: {_describe(exc)}") from None

    def _connect(self, readonly: bool, keys: list[str] | None = None):
        """A connection to the file: plain SQLite, or SQLCipher with the first key that opens it."""
        target = self.path.resolve().as_uri() + "?mode=ro" if readonly else str(self.path)
        opts = dict(uri=readonly, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        if keys is None and not _looks_encrypted(self.path):
            return sqlite3.connect(target, **opts)
        cipher = _cipher()
        if cipher is None:
            raise SinkError(f"cannot open the session store {self.path}: not a database, or an encrypted store "
                            "and sqlcipher3 is not installed (pip install 'presence[encrypt]')")
        if keys is None:
            from engine.store_key import candidate_keys

            keys = candidate_keys(self.path)
        for key in keys:
            db = cipher.connect(target, **opts)
            try:
                db.execute(f"PRAGMA key = \"x'{key}'\"")  # a raw 256-bit key: no passphrase stretching
                db.execute("SELECT count(*) FROM sqlite_master").fetchall()
            except cipher.DatabaseError:
                db.close()
                continue
            self.encrypted = True
            return db
        raise SinkError(f"cannot open the session store {self.path}: not a database, or encrypted and no key "
                        "for it is available here (OS keyring or .presence-store.key beside it)")

    def _rows(self, sql: str, args) -> list:
        """A read; SQLCipher's errors are raised as sqlite3's, so callers catch one kind."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except self._errors as exc:
                if isinstance(exc, sqlite3.Error):
                    raise
                raise sqlite3.DatabaseError(str(exc)) from None

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
            except (OSError, *self._errors) as exc:
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
        rows = self._rows(q + " ORDER BY id", args)
        return [json.loads(r[0]) for r in rows]

    def count(self, session: str, type_: str) -> int:
        """How many events of ``type_`` a session has, counted by SQLite (no event is decoded)."""
        return self._rows("SELECT COUNT(*) FROM events WHERE session=? AND type=?", (session, type_))[0][0]

    def search(self, text: str, session: str | None = None, limit: int = 20) -> list[Event]:
        """Full-text search over what was said, asked and summarised (FTS5 query syntax)."""
        q = "SELECT e.json FROM events_fts f JOIN events e ON e.id=f.rowid WHERE events_fts MATCH ?"
        args: list = [text]
        if session:
            q += " AND e.session=?"
            args.append(session)
        q += " ORDER BY rank LIMIT ?"
        args.append(limit)
        rows = self._rows(q, args)
        return [json.loads(r[0]) for r in rows]

    def sessions(self) -> list[dict]:
        rows = self._rows("SELECT session, started_wall, source, backend, ended_wall FROM sessions "
                          "ORDER BY started_wall", ())
        keys = ("session", "started_wall", "source", "backend", "ended_wall")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
