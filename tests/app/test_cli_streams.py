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
