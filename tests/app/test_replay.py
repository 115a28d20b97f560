"""Replay: a recorded session (JSONL log or session store) reads back exactly as it was recorded, and
`presence replay` prints the same terminal timeline the live run printed."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings
from app.replay import ReplayError, open_recorded, print_timeline
from app.timeline_printer import TimelinePrinter
from app.wiring import build_session
from tests.engine.fakes import ArraySource, ScriptedBackend, solid

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recorded(tmp_path):
    """A 12-second session with responses, a query and a skipped second; what it printed live."""
    settings = Settings()
    settings.voice.speak = False
    script = {2: "</response> A chart appears.", 5: "</response> The total is 42.", 9: "</silence>"}
    frames = [(float(t), solid(t * 20 % 255)) for t in range(12) if t != 7]  # second 7 has no frame
    log, store = tmp_path / "run.jsonl", tmp_path / "run.sqlite"
    built = build_session(settings, fast=True, backend=ScriptedBackend(script), source=ArraySource(frames),
                          log=str(log), store=str(store), voice=False)
    live = io.StringIO()
    built.bus.subscribe(TimelinePrinter(live))
    built.session.submit_query("watch the totals", at=1.0)
    built.session.run()
    built.close()
    return log, store, live.getvalue()


def test_log_and_store_replay_to_the_live_timeline(recorded):
    log, store, live = recorded
    assert "skipped  (no_frame)" in live and "The total is 42." in live
    for path in (log, store):
        out = io.StringIO()
        rec = open_recorded(path)
        print_timeline(rec, out)
        assert out.getvalue() == live, path
        assert rec.seconds == 12 and rec.source == "array"  # the label of the source the session watched


def test_opening_a_store_never_writes_to_it(recorded):
    _, store, _ = recorded
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    open_recorded(store)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    wal = store.with_name(store.name + "-wal")  # SQLite may create an empty WAL index to read; no writes
    assert not wal.exists() or wal.stat().st_size == 0


def test_presence_replay_command(recorded, tmp_path):
    log, _, live = recorded
    r = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(log)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == live, r.stderr
    bad = tmp_path / "nope.jsonl"
    bad.write_text("this is not a log\n")
    r = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(bad)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds no Presence events" in r.stderr


def test_unknown_session_and_missing_file_are_one_line(recorded, tmp_path):
    log, store, _ = recorded
    with pytest.raises(ReplayError, match="no session 'zzz'"):
        open_recorded(store, "zzz")
    with pytest.raises(ReplayError, match="no such session file"):
        open_recorded(tmp_path / "missing.jsonl")
