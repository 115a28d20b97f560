"""``tick_s`` 2 (slow hardware): one record per second still, every other second skipped(tick), time in seconds."""

from engine.session import SessionOptions
from tests.engine.fakes import solid
from tests.engine.test_session import per_second, run_session


def test_tick_s_2_decides_every_other_second_and_records_every_second():
    frames = [(i / 4, solid(i)) for i in range(24)]  # 6 seconds, 4 frames a second, value = frame index
    result, events, backend = run_session(frames, options=SessionOptions(tick_s=2), queries=[(1.5, "what changed?")])
    recs = per_second(events)
    assert [r["t"] for r in recs] == [0, 1, 2, 3, 4, 5]  # exactly one record per second
    assert [r["type"] for r in recs] == ["decision", "skipped"] * 3
    assert [r["reason"] for r in recs if r["type"] == "skipped"] == ["tick"] * 3
    # the time markers stay in seconds and each decided second sees the last frame captured in it
    assert [turn.t for turn in backend.turns] == [0, 2, 4]
    assert [int(turn.pixels[0, 0, 0]) for turn in backend.turns] == [3, 11, 19]
    # an instruction that arrives in a skipped second enters the next decided turn
    assert [bool(turn.query) for turn in backend.turns] == [False, True, False]
    assert (result.ticks, result.decisions, result.skipped) == (6, 3, 3)


def test_tick_s_1_is_unchanged():
    frames = [(i / 4, solid(i)) for i in range(12)]
    result, events, backend = run_session(frames, options=SessionOptions(tick_s=1))
    assert [r["type"] for r in per_second(events)] == ["decision"] * 3
    assert [turn.t for turn in backend.turns] == [0, 1, 2] and result.skipped == 0
