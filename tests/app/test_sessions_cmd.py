import subprocess
import sys
from pathlib import Path

import pytest

from app.commands.sessions import parse_time, resolve_time, retrieve
from engine.events import EventBus
from engine.log import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def make_store(path):
    db = SqliteStore(path)
    bus = EventBus("20261124-101500-abc123")
    bus.subscribe(db)
    bus.emit(0, "session_started", source="demo.mp4", backend="heuristic")
    for t in range(0, 700):
        if t == 632:
            bus.emit(t, "decision", action="response", text="The checkout button turned green.")
        elif t == 100:
            bus.emit(t, "decision", action="response", text="A red banner says SALE.")
        else:
            bus.emit(t, "decision", action="silence", text="")
    bus.emit(300, "summary", kind="mid", summary="Seconds 200-400: the user browsed shoes.", start_t=200, end_t=400)
    bus.emit(700, "session_ended", ticks=700)
    db.close()


@pytest.mark.parametrize(("q", "t"), [("what happened around 10:32?", 632), ("at 1:00:05", 3605),
                                      ("around 632s", 632), ("after 5 minutes", 300), ("what was said?", None)])
def test_parse_time(q, t):
    assert parse_time(q) == t


def test_retrieval_by_time_and_text(tmp_path):
    make_store(tmp_path / "s.sqlite")
    db = SqliteStore(tmp_path / "s.sqlite")
    near = retrieve(db, "20261124-101500-abc123", "what happened around 10:32?")
    assert [e["text"] for e in near if e["type"] == "decision"] == ["The checkout button turned green."]
    banner = retrieve(db, "20261124-101500-abc123", "when was the SALE banner?")
    assert any("SALE" in e["text"] for e in banner)


def test_clock_time_past_the_stream_end_reads_as_wall_clock():
    import datetime as dt

    start = dt.datetime(2026, 11, 24, 10, 30, 0).astimezone()  # local 10:30, a 5-minute session
    wall = start.astimezone(dt.UTC).isoformat()
    assert resolve_time("what happened around 10:32?", wall, end_t=300) == 120  # 10:30 → 10:32
    assert resolve_time("around 10:32?", wall, end_t=700) == 632  # within the stream: mm:ss
    assert resolve_time("around 23:10?", wall, end_t=300) == 23 * 60 + 10  # neither fits: mm:ss stays


def run(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_sessions_lists_and_ask_unknown_session(tmp_path):
    make_store(tmp_path / "s.sqlite")
    r = run("sessions", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 0 and "20261124-101500-abc123" in r.stdout and "heuristic" in r.stdout
    assert "700 s" in r.stdout
    r = run("ask", "nosuch", "what?", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 2 and "no session 'nosuch'" in r.stderr


@pytest.mark.slow
def test_ask_answers_through_the_local_brain(tmp_path):
    pytest.importorskip("llama_cpp")
    make_store(tmp_path / "s.sqlite")
    r = run("ask", "20261124", "what happened around 10:32?", "--store", str(tmp_path / "s.sqlite"),
            "--show-context")
    assert r.returncode == 0, r.stderr
    context, _, answer = r.stdout.partition("\n")
    assert "[10:32] response: The checkout button turned green." in context
    assert answer.strip()  # SmolLM2's words
