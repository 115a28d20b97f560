"""``presence run --source A --source B …``: several streams in one process, end to end (a real subprocess)."""

import json
import sqlite3
from pathlib import Path

from tests.app.test_cli_run import load, presence


def test_several_sources_each_get_their_own_complete_log_and_store(short_clip, tmp_path):
    log, store = tmp_path / "run.jsonl", tmp_path / "run.sqlite"
    missing = tmp_path / "nope.mp4"
    r = presence("run", "--source", str(short_clip), "--source", str(missing), "--source", str(short_clip),
                 "--backend", "heuristic", "--set", "heuristic.ocr=false", "--headless", "--fast", "--important", "3",
                 "--log", str(log), "--store", str(store))
    assert r.returncode == 3, r.stderr  # the bad source's code, after the others finished
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "stream s2" in lines[0] and "nope.mp4" in lines[0] and "Traceback" not in r.stderr
    sessions = set()
    for name in ("s1", "s3"):
        events = load(tmp_path / f"run.{name}.jsonl")
        records = [e for e in events if e["type"] in ("decision", "skipped")]
        assert [e["t"] for e in records] == list(range(12)) and all(e["type"] == "decision" for e in records)
        assert events[-1]["type"] == "session_ended" and events[-1]["error"] is None
        assert len({e["session"] for e in events}) == 1
        sessions |= {events[0]["session"]}
        with sqlite3.connect(tmp_path / f"run.{name}.sqlite") as db:
            stored = db.execute("select count(*), count(distinct session) from events where type='decision'").fetchone()
        assert stored == (12, 1)
        assert sum(line.startswith(f"{name} ") and "s " in line for line in r.stdout.splitlines()) >= 12
    assert len(sessions) == 2  # two separate sessions
    assert not Path(str(log)).exists()  # only the streams' own files
    assert not [e for e in load(tmp_path / "run.s2.jsonl") if e["type"] in ("decision", "skipped")]
    assert json.loads((tmp_path / "run.s1.jsonl").read_text().splitlines()[0])["type"] == "session_started"


def test_a_failed_streams_own_backend_is_closed(short_clip, tmp_path, monkeypatch):
    """heuristic/lite build one backend per stream; the one of a stream whose source cannot open is closed at
    once, and the running streams' are closed with them."""
    import app.wiring as wiring
    from app.config import Settings

    made = []
    real = wiring.build_backend

    def tracking(settings):
        backend = real(settings)
        made.append(backend)
        backend.closed = False
        close = backend.close

        def closing():
            backend.closed = True
            close()

        backend.close = closing
        return backend

    monkeypatch.setattr(wiring, "build_backend", tracking)
    s = Settings()
    s.backend.name, s.heuristic.ocr = "heuristic", False
    # a file that does not open (fails in open_source) and a spec that does not parse (fails before it)
    built = wiring.build_streams(s, [str(short_clip), str(tmp_path / "nope.mp4"), "webcam:abc"], fast=True,
                                 duration=2, report=lambda line: None)
    assert built.streams[1:] == [None, None] and len(made) == 3
    assert made[1].closed and made[2].closed and not made[0].closed  # the failed streams' own backends, at once
    built.close()
    assert made[0].closed
