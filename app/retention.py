"""Forgetting: recorded sessions deleted on request (``presence sessions rm``) or by the retention
settings (``[storage] keep_days`` / ``max_gb``), applied whenever a session starts.

Sessions live one store file per session under the data dir (``sessions/<id>.sqlite``), or several in a
``--store FILE``. Deleting a session removes its file (with SQLite's ``-wal``/``-shm`` companions), or
its rows and search index entries from a shared store.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

COMPANIONS = ("", "-wal", "-shm")


@dataclass(frozen=True)
class SessionInfo:
    """One recorded session as the session lists show it (``presence sessions``, the window's list)."""

    session: str
    started_wall: str
    source: str
    backend: str
    seconds: int  # decision records, one per decided second
    store: Path
    bytes: int  # the store file's size (shared by every session in a shared store)


def sessions_dir() -> Path:
    """Where the one-session stores live (``<data dir>/sessions/<id>.sqlite``)."""
    from app.config import data_dir

    return data_dir() / "sessions"


def session_stores(store: str | Path | None = None) -> list[Path]:
    """``store`` alone when given, else every one-session store under the data dir."""
    if store:
        return [Path(store)]
    return sorted(sessions_dir().glob("*.sqlite"))


def list_sessions(stores: list[Path]) -> tuple[list[SessionInfo], list[str]]:
    """The sessions in ``stores`` (oldest first) and one warning line per store that cannot be read."""
    from engine.events import EventType
    from engine.log import SqliteStore

    found, warnings = [], []
    for path in stores:
        db = None
        try:  # a corrupt or foreign file is reported in one line; the other stores are still listed
            db = SqliteStore(path, readonly=True)
            size = sum(f.stat().st_size for f in _files(path))
            found += [SessionInfo(s["session"], s["started_wall"] or "", s["source"] or "", s["backend"] or "",
                                  db.count(s["session"], EventType.DECISION), path, size) for s in db.sessions()]
        except (OSError, sqlite3.Error) as exc:
            warnings.append(f"cannot read {path}: {exc}")
        finally:
            if db is not None:
                db.close()
    return sorted(found, key=lambda i: (i.started_wall, i.session)), warnings


@dataclass
class Forgotten:
    sessions: list[str] = field(default_factory=list)
    bytes_freed: int = 0


def _files(store: Path) -> list[Path]:
    return [Path(str(store) + suffix) for suffix in COMPANIONS if Path(str(store) + suffix).exists()]


def _remove_file(store: Path, out: Forgotten) -> None:
    for f in _files(store):
        out.bytes_freed += f.stat().st_size
        f.unlink()


def _sessions_in(store: Path) -> list[str]:
    db = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [s for (s,) in db.execute("SELECT session FROM sessions")]
    finally:
        db.close()


def delete_sessions(stores: list[Path], ids: list[str]) -> Forgotten:
    """Delete the sessions whose id starts with one of ``ids`` (a prefix is enough) from ``stores``."""
    out = Forgotten()
    for store in stores:
        try:
            present = _sessions_in(store)
        except sqlite3.DatabaseError:  # unreadable: a one-session store is still named after its session
            present = [store.stem]
        doomed = [s for s in present if any(s.startswith(i) for i in ids)]
        if not doomed:
            continue
        if set(doomed) == set(present):  # the whole file is these sessions: remove it
            _remove_file(store, out)
        else:
            before = sum(f.stat().st_size for f in _files(store))
            db = sqlite3.connect(store, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                for s in doomed:
                    db.execute("DELETE FROM events WHERE session=?", (s,))
                    db.execute("DELETE FROM sessions WHERE session=?", (s,))
                db.execute("INSERT INTO events_fts(events_fts) VALUES('rebuild')")  # forget the search text too
                db.execute("COMMIT")
                db.execute("VACUUM")
            finally:
                db.close()
            out.bytes_freed += max(0, before - sum(f.stat().st_size for f in _files(store)))
        out.sessions += doomed
    return out


def apply_retention(folder: Path, keep_days: float, max_gb: float, now: float | None = None) -> Forgotten:
    """In a folder of one-session stores: delete those older than ``keep_days`` (0 = keep), then the
    oldest until the folder is under ``max_gb`` (0 = no limit)."""
    out = Forgotten()
    if not folder.is_dir() or (keep_days <= 0 and max_gb <= 0):
        return out
    now = time.time() if now is None else now
    stores = sorted(folder.glob("*.sqlite"), key=lambda p: p.stat().st_mtime)
    kept = []
    for store in stores:
        if keep_days > 0 and now - store.stat().st_mtime > keep_days * 86400:
            out.sessions.append(store.stem)
            _remove_file(store, out)
        else:
            kept.append(store)
    if max_gb > 0:
        total = sum(f.stat().st_size for s in kept for f in _files(s))
        while kept and total > max_gb * (1 << 30):
            oldest = kept.pop(0)
            size = sum(f.stat().st_size for f in _files(oldest))
            out.sessions.append(oldest.stem)
            _remove_file(oldest, out)
            total -= size
    return out
