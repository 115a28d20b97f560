"""Forgetting recorded sessions: by id (a whole per-session file, or rows of a shared store, search
index included) and by the retention settings (age, total size)."""

from __future__ import annotations

import os
import sqlite3
import time

from app.retention import apply_retention, delete_sessions
from engine.events import EventBus, QueryReceived, SessionEnded, SessionStarted
from engine.log import SqliteStore


def record(store, session: str, secret: str) -> None:
    bus = EventBus(session)
    db = SqliteStore(store)
    bus.subscribe(db)
    bus.publish(0, SessionStarted(source="demo"))
    bus.publish(1, QueryReceived(text=secret, source="typed"))
    bus.publish(2, SessionEnded())
    db.close()


def test_rm_removes_a_session_from_a_shared_store_and_its_search_index(tmp_path):
    store = tmp_path / "shared.sqlite"
    record(store, "20261201-aaa", "the tax number is 12345")
    record(store, "20261201-bbb", "keep this one")
    out = delete_sessions([store], ["20261201-a"])
    assert out.sessions == ["20261201-aaa"]
    db = SqliteStore(store, readonly=True)
    assert [s["session"] for s in db.sessions()] == ["20261201-bbb"]
    assert db.search("tax") == [] and len(db.search("keep")) == 1
    db.close()
    assert b"12345" not in store.read_bytes()  # gone from the file, not only from the index


def test_rm_of_a_one_session_file_deletes_the_file(tmp_path):
    store = tmp_path / "20261201-ccc.sqlite"
    record(store, "20261201-ccc", "x")
    out = delete_sessions([store], ["20261201-ccc"])
    assert out.sessions == ["20261201-ccc"] and out.bytes_freed > 0 and not store.exists()


def test_retention_by_age_and_by_size(tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    now = time.time()
    for i, age_days in enumerate([40, 20, 5, 1]):
        f = folder / f"s{i}.sqlite"
        record(f, f"s{i}", "y" * 20000)
        os.utime(f, (now - age_days * 86400, now - age_days * 86400))
    assert apply_retention(folder, keep_days=0, max_gb=0).sessions == []  # off by default
    assert apply_retention(folder, keep_days=30, max_gb=0, now=now).sessions == ["s0"]
    size_one = (folder / "s3.sqlite").stat().st_size
    limit_gb = (size_one * 1.5) / (1 << 30)  # room for one file only
    out = apply_retention(folder, keep_days=0, max_gb=limit_gb, now=now)
    assert out.sessions == ["s1", "s2"] and [p.name for p in folder.glob("*.sqlite")] == ["s3.sqlite"]
    assert sqlite3.connect(folder / "s3.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_presence_sessions_rm(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PRESENCE_DATA_DIR": str(tmp_path / "data")}
    folder = tmp_path / "data" / "sessions"
    folder.mkdir(parents=True)
    record(folder / "20261201-ddd.sqlite", "20261201-ddd", "z")
    record(folder / "20261201-eee.sqlite", "20261201-eee", "z")
    run = lambda *a: subprocess.run([sys.executable, "-m", "app.cli", "sessions", *a], cwd=root, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    r = run("rm", "20261201-dd")
    assert r.returncode == 0 and "deleted 20261201-ddd" in r.stdout, r.stderr
    assert [p.name for p in folder.glob("*.sqlite")] == ["20261201-eee.sqlite"]
    r = run("rm", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no session nope" in r.stderr
    assert "20261201-eee" in run().stdout
