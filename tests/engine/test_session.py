import json

import numpy as np
import pytest

from engine.backends.base import BackendError
from engine.clock import RealClock, VirtualClock
from engine.events import EventBus
from engine.log import JsonlLog
from engine.memory import MemoryOptions
from engine.session import Session, SessionOptions
from tests.engine.fakes import ArraySource, ScriptedBackend, solid


def run_session(frames, script=None, options=None, queries=(), backend=None, clock=None):
    backend = backend or ScriptedBackend(script)
    bus = EventBus("test")
    events = []
    bus.subscribe(events.append)
    s = Session(backend, ArraySource(frames), bus=bus, clock=clock or VirtualClock(), options=options)
    for at, q in queries:
        s.submit_query(q, at=at)
    result = s.run()
    return result, events, backend


def per_second(events):
    return [e for e in events if e["type"] in ("decision", "skipped")]


def test_one_record_per_second_with_last_frame_of_each_second():
    # 4 frames per second for 5 seconds; each frame's value encodes its time
    frames = [(i / 4, solid(i)) for i in range(20)]
    result, events, backend = run_session(frames)
    recs = per_second(events)
    assert [r["t"] for r in recs] == [0, 1, 2, 3, 4]
    assert all(r["type"] == "decision" for r in recs)
    # tick t sees the last frame captured in [t, t+1): value 4t+3
    assert [int(turn.pixels[0, 0, 0]) for turn in backend.turns] == [3, 7, 11, 15, 19]
    assert result.ticks == 5 and result.error is None


def test_gap_second_is_skipped_with_reason():
    frames = [(0.0, solid(1)), (0.5, solid(2)), (2.2, solid(3))]  # nothing in [1, 2)
    _, events, _ = run_session(frames)
    recs = per_second(events)
    assert [(r["t"], r["type"]) for r in recs] == [(0, "decision"), (1, "skipped"), (2, "decision")]
    assert recs[1]["reason"] == "no_frame" and "action" not in recs[1]


def test_decision_event_schema():
    frames = [(float(i), solid(i * 20)) for i in range(3)]
    _, events, _ = run_session(frames, script={1: "</response> hello"})
    d = [e for e in events if e["type"] == "decision"][1]
    assert d["v"] == 1 and d["session"] == "test" and d["t"] == 1.0 and d["wall"]
    assert d["action"] == "response" and d["text"] == "hello"
    assert set(d["latency_ms"]) == {"capture", "prefill", "decide", "total"}
    assert set(d["tokens"]) == {"context", "new"} and set(d["kv_bytes"]) == {"fast", "offload", "used"}
    assert events[0]["type"] == "session_started" and events[-1]["type"] == "session_ended"


def test_commit_receives_normalised_text():
    frames = [(float(i), solid(i)) for i in range(3)]
    _, _, backend = run_session(frames, script={0: "<think>x</think></response> hi\nmore", 1: "garbage\nline"})
    assert backend.commits == ["</response> hi", "</response> garbage", "</silence>"]


def test_query_enters_turn_where_it_arrives_and_stands():
    frames = [(float(i), solid(i)) for i in range(6)]
    _, events, backend = run_session(frames, queries=[(2.4, "watch the door"), (4.0, "watch the door"),
                                                      (5.0, "count cars")])
    assert [t.query for t in backend.turns] == [None, None, "watch the door", None, None, "count cars"]
    assert [t.standing_query for t in backend.turns][3] == "watch the door"
    qs = [e for e in events if e["type"] == "query"]
    assert [(q["t"], q["text"]) for q in qs] == [(2, "watch the door"), (5, "count cars")]  # repeat ignored


def test_chunk_boundary_rebuilds_prefix_with_summary_and_history():
    frames = [(float(i), solid(i)) for i in range(12)]
    opts = SessionOptions(memory=MemoryOptions(chunk_ticks=5, lead_ticks=2, boundary_wait_s=5))
    _, events, backend = run_session(frames, script={1: "</response> first thing"}, options=opts,
                                     queries=[(0, "q1"), (6, "q2")])
    # one prefix at start + one per boundary (after ticks 4 and 9)
    assert len(backend.prefixes) == 3
    assert "first thing" in backend.prefixes[1].text and "q1" in backend.prefixes[1].text
    assert "[Q&A History]" in backend.prefixes[2].text and "q2" in backend.prefixes[2].text
    summaries = [e for e in events if e["type"] == "summary"]
    assert len(summaries) == 2 and summaries[0]["start_t"] == 0


def test_backend_error_is_logged_and_session_continues():
    class Flaky(ScriptedBackend):
        def observe(self, turn):
            if turn.t == 1:
                raise BackendError("server went away")
            super().observe(turn)

    frames = [(float(i), solid(i)) for i in range(3)]
    result, events, _ = run_session(frames, backend=Flaky())
    recs = per_second(events)
    assert [(r["t"], r["type"]) for r in recs] == [(0, "decision"), (1, "skipped"), (2, "decision")]
    assert recs[1]["reason"] == "backend_error"
    assert any(e["type"] == "error" and "server went away" in e["message"] for e in events)
    assert result.error is None


def test_source_failing_partway_keeps_every_decoded_second(tmp_path):
    frames = [(i / 2, solid(i)) for i in range(10)]
    backend = ScriptedBackend()
    bus = EventBus("s")
    log = tmp_path / "log.jsonl"
    bus.subscribe(JsonlLog(log))
    source = ArraySource(frames, fail_after=7)  # frames 0..6 decode: seconds 0..3
    result = Session(backend, source, bus=bus, clock=VirtualClock()).run()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    ticks = [e["t"] for e in lines if e["type"] == "decision"]
    assert ticks == [0, 1, 2, 3]
    assert result.error_kind == "source"
    assert [e["type"] for e in lines].count("error") == 1 and lines[-1]["type"] == "session_ended"


@pytest.mark.slow
def test_realtime_busy_backend_skips_ticks_but_never_queues():
    # real clock, 5 s of frames at 4 fps; the backend takes 1.6 s per tick → busy skips
    frames = [(i / 4, solid(i * 3 % 255)) for i in range(20)]
    backend = ScriptedBackend(delay_s=1.6)
    result, events, _ = run_session(frames, backend=backend, clock=RealClock())
    recs = per_second(events)
    assert sorted(r["t"] for r in recs) == [0, 1, 2, 3, 4]  # exactly one record per second
    skipped = [r for r in recs if r["type"] == "skipped"]
    assert skipped and all(r["reason"] == "busy" for r in skipped)
    # the tick after a busy stretch saw the newest frame, not a queued stale one
    decided = [r["t"] for r in recs if r["type"] == "decision"]
    for turn, t in zip(backend.turns, decided, strict=True):
        assert turn.t == t and int(turn.pixels[0, 0, 0]) == (4 * t + 3) * 3 % 255


def test_virtual_clock_never_skips_for_slow_backend():
    frames = [(float(i), solid(i)) for i in range(4)]
    _, events, _ = run_session(frames, backend=ScriptedBackend(delay_s=0.05))
    assert all(r["type"] == "decision" for r in per_second(events))


def test_pause_records_skipped_paused():
    frames = [(float(i), solid(i)) for i in range(3)]
    backend = ScriptedBackend()
    bus = EventBus("p")
    events = []
    bus.subscribe(events.append)
    s = Session(backend, ArraySource(frames), bus=bus, clock=VirtualClock())
    s.pause(True)
    s.run()
    assert [r.get("reason") for r in per_second(events)] == ["paused"] * 3
    assert backend.turns == []


def test_broken_subscriber_does_not_lose_log_lines(tmp_path):
    bus = EventBus("b")

    def broken(_e):
        raise RuntimeError("ui crashed")

    bus.subscribe(broken)
    log = tmp_path / "l.jsonl"
    bus.subscribe(JsonlLog(log))
    Session(ScriptedBackend(), ArraySource([(0.0, solid(1)), (1.0, solid(2))]), bus=bus, clock=VirtualClock()).run()
    assert len(log.read_text().splitlines()) == 4  # started, 2 decisions, ended
    assert bus.subscriber_errors


def test_frame_sampler_keeps_latest_and_resizes():
    from engine.frames import Frame, FrameSampler

    s = FrameSampler(max_pixels=100 * 100)
    for i in range(3):
        s.push(Frame(np.full((400, 800, 3), i, np.uint8), t=float(i)))
    got = s.take()
    assert got.frame.t == 2.0 and s.dropped == 2
    h, w = got.pixels.shape[:2]
    assert h * w <= 100 * 100 and abs(w / h - 2.0) < 0.05
    assert s.take() is None


def test_pausing_a_file_stops_playback_and_logs_paused_seconds():
    """Real clock, a 10-second 'file' whose frame k shows the value 10·k: paused for ~3 s after second
    2, every paused second is logged `paused` (never `busy`), and playback resumes at the frame where
    it stood — no second of the file is skipped."""
    import threading as _threading
    import time as _time

    from engine.clock import RealClock
    from engine.events import EventBus
    from engine.session import Session, SessionOptions
    from tests.engine.fakes import ArraySource, ScriptedBackend, solid

    frames = [(float(k), solid(10 * k)) for k in range(10)]
    backend = ScriptedBackend()
    bus = EventBus("pause")
    events: list[dict] = []
    bus.subscribe(events.append)
    session = Session(backend, ArraySource(frames), bus=bus, clock=RealClock(), options=SessionOptions(duration_s=16))
    runner = _threading.Thread(target=session.run, daemon=True)
    runner.start()
    _time.sleep(2.5)
    session.pause(True)
    _time.sleep(3.2)
    session.pause(False)
    runner.join(30)
    reasons = [e["reason"] for e in events if e["type"] == "skipped"]
    assert reasons.count("paused") >= 2 and "busy" not in reasons, reasons
    seen = [int(t.pixels.mean()) // 10 for t in backend.turns if t.pixels is not None]
    assert seen == sorted(seen) and set(range(10)) <= set(seen), seen  # every frame of the file was shown
