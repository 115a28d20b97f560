"""Session export: JSONL round trip, SRT cues of the responses, Markdown summary — on a real heuristic
session over the bundled demo clip, and on a hand-written event list for exact expectations."""

from __future__ import annotations

import json

import pytest

from app.export import export_session, load_jsonl, srt_time, to_markdown, to_srt

EVENTS = [
    {"v": 1, "session": "s1", "t": 0.0, "type": "session_started", "source": "demo.mp4", "backend": "heuristic"},
    {"v": 1, "session": "s1", "t": 0.0, "type": "decision", "action": "silence", "text": "",
     "latency_ms": {"total": 10.0}},
    {"v": 1, "session": "s1", "t": 1.0, "type": "query", "text": "tell me when the slide changes"},
    {"v": 1, "session": "s1", "t": 1.0, "type": "decision", "action": "response", "text": "Slide 2: results",
     "latency_ms": {"total": 30.0}},
    {"v": 1, "session": "s1", "t": 3.0, "type": "decision", "action": "delegate", "text": "Let me check.",
     "delegate_query": "what is 2+2", "latency_ms": {"total": 20.0}},
    {"v": 1, "session": "s1", "t": 3.0, "type": "skipped", "reason": "busy"},
    {"v": 1, "session": "s1", "t": 9.0, "type": "delegate_result", "result": "4", "task": 1},
    {"v": 1, "session": "s1", "t": 3725.0, "type": "summary", "kind": "mid", "summary": "Slides 1-2 shown."},
    {"v": 1, "session": "s1", "t": 3726.0, "type": "session_ended", "error": None},
]


def test_srt_time_format():
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3725.5) == "01:02:05,500"


def test_srt_cues_end_at_next_response_or_cap():
    srt = to_srt(EVENTS)
    blocks = srt.strip().split("\n\n")
    assert blocks[0].splitlines() == ["1", "00:00:01,000 --> 00:00:03,000", "Slide 2: results"]
    assert blocks[1].splitlines() == ["2", "00:00:03,000 --> 00:00:07,000", "Let me check."]
    assert len(blocks) == 2


def test_markdown_has_counts_and_sections():
    md = to_markdown(EVENTS)
    assert md.startswith("# Presence session s1")
    assert "1 silent, 1 responses, 1 delegated, 1 skipped" in md
    assert "p50 20 ms" in md
    assert "- **0:00:01** tell me when the slide changes" in md
    assert "## Delegated answers" in md and "- **0:00:09** 4" in md
    assert "- **1:02:05** Slides 1-2 shown." in md


def test_jsonl_round_trip_skips_a_torn_last_line(tmp_path):
    paths = export_session(EVENTS, tmp_path, stem="x")
    assert set(paths) == {"jsonl", "srt", "md"}
    with paths["jsonl"].open("a") as fh:
        fh.write('{"v":1,"type":"decis')  # a crash mid-write
    assert load_jsonl(paths["jsonl"]) == EVENTS


def test_export_of_a_real_heuristic_session(tmp_path):
    from app.config import Settings
    from app.wiring import DEMO_CLIP, build_session

    if not DEMO_CLIP.exists():
        pytest.skip(f"demo clip missing: {DEMO_CLIP}")
    s = Settings()
    s.backend.name = "heuristic"
    s.heuristic.ocr = False
    log = tmp_path / "run.jsonl"
    built = build_session(s, fast=True, log=str(log), store=str(tmp_path / "s.sqlite"), duration=30)
    built.session.run()
    built.close()
    events = load_jsonl(log)
    paths = export_session(events, tmp_path / "out")
    said = [e["text"] for e in events if e["type"] == "decision" and e["action"] != "silence"]
    assert said, "the demo clip should make the heuristic backend respond at least once"
    srt = paths["srt"].read_text()
    assert srt.count(" --> ") == len(said)
    assert all(text in srt for text in said)
    assert [json.loads(x) for x in paths["jsonl"].read_text().splitlines()] == events
    assert "30 (" in paths["md"].read_text()  # 30 seconds accounted for
