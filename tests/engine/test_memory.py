"""Three-tier memory: budgets, boundaries and the never-blocking summarizer (DESIGN §5)."""

import threading
import time

import pytest

from engine.clock import VirtualClock
from engine.events import EventBus
from engine.memory import ConcatSummarizer, Memory, MemoryOptions, TurnRecord, estimate_tokens
from engine.session import Session, SessionOptions
from tests.engine.fakes import ArraySource, ScriptedBackend, solid


class PrefixRecorder(ScriptedBackend):
    """FAKE backend: answers every 7th second and records every chunk prefix it receives."""

    def __init__(self):
        super().__init__({})
        self.tick_ms = []

    def decide(self, max_tokens=128):
        yield f"</response> Event {self._t}: the counter shows {self._t * 3}" if self._t % 7 == 0 else "</silence>"


class GatedSummarizer(ConcatSummarizer):
    """FAKE slow summarizer: each mid summary waits for ``gate`` (at most 5 s), then says "<label> <index>"."""

    def __init__(self, gate: threading.Event, label: str):
        super().__init__()
        self.gate, self.label = gate, label

    def summarize(self, chunk):
        self.gate.wait(5)
        return f"{self.label} {chunk.index}"


class VerboseSummarizer(ConcatSummarizer):
    """FAKE summarizer with realistic sizes: ~300-token mid summaries, merges that shrink."""

    def summarize(self, chunk):
        return f"Chunk {chunk.index} ({chunk.start_t}-{chunk.end_t}s): " + "state details " * 100

    def merge(self, texts, coarser=False):
        return ("Gist: " if coarser else "Merged: ") + " / ".join(t[:250] for t in texts)[: 400 if coarser else 1200]


@pytest.mark.slow
def test_simulated_twelve_hours_stays_within_budget():
    hours = 12
    ticks = hours * 3600
    frame = solid(10)
    source = ArraySource([(float(i), frame) for i in range(ticks)])
    opts = SessionOptions(keep_summary_frames=False,
                          memory=MemoryOptions(chunk_ticks=200, mid_max=5, long_every=5, long_max_blocks=42,
                                               long_max_tokens=4000, lead_ticks=20))
    backend = PrefixRecorder()
    bus = EventBus("12h")
    summaries = []
    longs = []
    bus.subscribe(lambda e: summaries.append(e) if e["type"] == "summary" and e["kind"] == "mid" else None)
    bus.subscribe(lambda e: longs.append(e) if e["type"] == "summary" and e["kind"] == "long" else None)
    memory = Memory(opts.memory, VerboseSummarizer())
    session = Session(backend, source, bus=bus, clock=VirtualClock(), options=opts, memory=memory)
    long_tokens_max = [0]
    orig_boundary = memory.boundary

    def boundary(t):
        orig_boundary(t)
        long_tokens_max[0] = max(long_tokens_max[0], sum(estimate_tokens(b) for b in memory.long))
        assert len(memory.mid) <= 5 and len(memory.long) <= 42
        # tiers never overlap: every mid summary starts after the last long block ends
        if memory.long_spans and memory.mid:
            assert memory.mid[0][0] > memory.long_spans[-1][1]

    memory.boundary = boundary
    t0 = time.perf_counter()
    result = session.run()
    elapsed = time.perf_counter() - t0
    assert result.ticks == ticks and result.skipped == 0
    boundaries = ticks // 200
    assert len(summaries) == boundaries  # every chunk boundary committed a summary
    assert [s["start_t"] for s in summaries[:3]] == [0, 180, 380]  # carry-over turns start the next chunk
    assert long_tokens_max[0] <= 4000
    prefix_tokens = [estimate_tokens(p.text) for p in backend.prefixes]
    assert len(prefix_tokens) == boundaries + 1
    # bounded: long (≤4000) + 5 mids (~300 each) + carry-over + QA — never growing with the hours
    assert max(prefix_tokens) < 4000 + 5 * 400 + 1200
    # a plateau once the long tier is at its budget: the last quarter is no bigger than the third
    q = len(prefix_tokens) // 4
    assert max(prefix_tokens[-q:]) <= max(prefix_tokens[2 * q:3 * q]) * 1.1
    # the first hours survive as a gist, not dropped
    assert memory.long and memory.long[0].startswith("Gist")
    assert memory.long_spans[0][0] == 0  # ... and the gist still covers the first second
    assert len(longs) >= boundaries // 5 - 2 and memory.late_summaries == 0
    # no tick waited on memory: each boundary's bounded wait was short (the fake is instant)
    assert max(memory.boundary_wait_s) < 0.5
    assert elapsed < 120


def test_late_summary_does_not_block_the_boundary_and_lands_later():
    gate = threading.Event()
    events = []
    mem = Memory(MemoryOptions(chunk_ticks=4, lead_ticks=1, boundary_wait_s=0.05),
                 GatedSummarizer(gate, "late summary of chunk"),
                 on_summary=lambda *a: events.append(a))
    for t in range(4):
        mem.record(TurnRecord(t, "</silence>"))
        mem.maybe_submit(t)
    t0 = time.perf_counter()
    mem.boundary(3)
    assert time.perf_counter() - t0 < 0.5 and mem.late_summaries == 1 and events == []
    gate.set()
    deadline = time.time() + 5
    while not events and time.time() < deadline:
        mem.poll()
        time.sleep(0.01)
    assert events and events[0][1] == "late summary of chunk 0"
    assert "late summary of chunk 0" in mem.prefix_text()
    mem.close()


def test_failing_summarizer_degrades_to_text():
    class Broken(ConcatSummarizer):
        def summarize(self, chunk):
            raise RuntimeError("model crashed")

    mem = Memory(MemoryOptions(chunk_ticks=3, lead_ticks=1), Broken())
    for t in range(3):
        mem.record(TurnRecord(t, "</response> hello" if t == 1 else "</silence>"))
        mem.maybe_submit(t)
    mem.boundary(2)
    assert "summarizer failed: model crashed" in mem.mid[0][2] and "hello" in mem.mid[0][2]
    mem.close()


def test_long_budget_merges_oldest_into_coarser_gist_instead_of_dropping():
    mem = Memory(MemoryOptions(long_max_blocks=3, long_max_tokens=10_000), VerboseSummarizer())
    mem.long = [f"block {i}" for i in range(3)]
    mem.long.append("block 3")
    mem._enforce_long_budget()
    assert len(mem.long) == 3 and mem.long[0].startswith("Gist") and "block 0" in mem.long[0]
    mem.close()


def test_slow_merge_runs_off_the_tick_thread_and_lands_later():
    gate = threading.Event()

    class SlowMerge(ConcatSummarizer):
        def merge(self, texts, coarser=False):
            gate.wait(5)
            return "merged " + " + ".join(t.split(":")[0] for t in texts)

    events = []
    mem = Memory(MemoryOptions(chunk_ticks=2, lead_ticks=0, mid_max=2, long_every=2, boundary_wait_s=1.0),
                 SlowMerge(), on_summary=lambda *a: events.append(a))
    t0 = time.perf_counter()
    for t in range(8):
        mem.record(TurnRecord(t, f"</response> said {t}"))
        mem.maybe_submit(t)
        mem.poll()
        if mem.is_boundary(t):
            mem.boundary(t)
    assert time.perf_counter() - t0 < 1.0  # four boundaries, merges pending, nothing waited on them
    assert [e[0] for e in events] == ["mid"] * 4 and mem.long == []
    assert [m[0] for m in mem.mid] == [6] or len(mem.mid) <= 2
    gate.set()
    deadline = time.time() + 5
    while not any(e[0] == "long" for e in events) and time.time() < deadline:
        mem.poll()
        time.sleep(0.01)
    assert mem.long and mem.long[0].startswith("merged Seconds 0") and mem.long_spans[0] == (0, 3)
    text = mem.prefix_text()
    assert text.startswith("[Long-term 0s ~ 3s]") and "said 0" not in text.split("\n", 1)[1]
    mem.close()


def test_summarizer_far_behind_degrades_instead_of_queueing_forever():
    gate = threading.Event()
    events = []
    mem = Memory(MemoryOptions(chunk_ticks=2, lead_ticks=0, boundary_wait_s=0.01), GatedSummarizer(gate, "real"),
                 on_summary=lambda *a: events.append(a))
    for t in range(12):
        mem.record(TurnRecord(t, "</silence>"))
        mem.maybe_submit(t)
        mem.poll()
        if mem.is_boundary(t):
            mem.boundary(t)
    assert mem.degraded_summaries == 3 and len(mem._jobs) == 6 and events == []
    gate.set()
    deadline = time.time() + 5
    while len(events) < 6 and time.time() < deadline:
        mem.poll()
        time.sleep(0.01)
    # every chunk committed, in order: the first three by the model, the rest as instant text
    assert [e[2] for e in events] == [0, 2, 4, 6, 8, 10]
    assert [e[1].startswith("real") for e in events] == [True] * 3 + [False] * 3
    mem.close()
