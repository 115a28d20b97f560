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


def test_ask_answers_only_from_the_store_with_times_and_quotes(tmp_path):
    make_store(tmp_path / "s.sqlite")
    r = run("ask", "20261124", "when was the SALE banner?", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 0, r.stderr
    assert "[01:40] Presence said: “A red banner says SALE.”" in r.stdout
    assert "checkout" not in r.stdout and "<" not in r.stdout  # only the matching event; no tag
    r = run("ask", "20261124", "did a cat walk in?", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 0 and r.stdout.strip() == "Nothing like that was seen in this session."


def test_recall_by_words_time_and_absence(tmp_path):
    from engine import recall

    make_store(tmp_path / "s.sqlite")
    db = SqliteStore(tmp_path / "s.sqlite")
    events = db.events("20261124-101500-abc123")
    near = recall.answer("what happened around 10:32?", events, at=632)
    assert near.splitlines()[1:] == ["[10:32] Presence said: “The checkout button turned green.”"]
    shoes = recall.answer("were shoes browsed?", events)
    assert "[05:00] Summary: “Seconds 200-400: the user browsed shoes.”" in shoes
    for absent in ("did a cat appear?", "what was the wifi password?", "when did the screen turn blue?"):
        assert recall.answer(absent, events) == recall.NOTHING, absent
    # a stored line carrying markup is quoted without it: no tag ever reaches the answer
    tagged = [{"type": "decision", "action": "response", "t": 5, "text": "<untrusted>Door opened</untrusted>"}]
    assert recall.answer("when was the door opened?", tagged) == "From the session record:\n[00:05] Presence said: “Door opened”"
