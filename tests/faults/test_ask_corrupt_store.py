"""``presence ask`` on a store it cannot read is one line and exit 2, never a traceback: a file that is
not a database at all, and a real store whose event pages were damaged after it was written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from engine.log import SqliteStore
from tests.faults.cli import presence


def ask(store: Path, session: str = "s1") -> subprocess.CompletedProcess:
    return presence("ask", "--store", str(store), session, "what was shown?")


def test_a_file_that_is_not_a_store(tmp_path):
    store = tmp_path / "s.sqlite"
    store.write_bytes(b"not a database at all " * 200)
    r = ask(store)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("presence: error: cannot open the session store") and "not a database" in r.stderr


def test_a_store_with_damaged_event_pages(tmp_path):
    store = tmp_path / "s.sqlite"
    db = SqliteStore(store)
    db({"v": 1, "session": "s1", "t": 0.0, "wall": "2026-01-01T10:00:00+00:00", "type": "session_started"})
    for t in range(400):
        db({"v": 1, "session": "s1", "t": float(t), "wall": "2026-01-01T10:00:00+00:00", "type": "decision",
            "action": "response", "text": f"slide {t} shows the quarterly figures"})
    db._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = store.stat().st_size
    with open(store, "r+b") as f:  # keep the header and the schema page; smash the rest
        f.seek(8192)
        f.write(b"\xa5" * (size - 8192))
    r = ask(store)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("presence: error: cannot read the session store"), r.stderr


def test_asking_never_creates_a_store(tmp_path):
    r = ask(tmp_path / "missing.sqlite")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "missing.sqlite").exists()
