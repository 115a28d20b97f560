"""Many streams on one backend (engine/streams.py): one record per second each, fair turns, priority."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from engine.backends.base import Backend, BackendConfig
from engine.clock import VirtualClock
from engine.context import ChunkPrefix, Turn
from engine.events import EventBus
from engine.session import Session
from engine.streams import (
    IMPORTANT,
    Fairness,
    StreamGate,
    StreamManager,
    StreamSpec,
    TurnTaking,
    stream_backends,
)
from tests.engine.fakes import ArraySource, solid


class SharedSlowModel:
    """FAKE shared model: each stream gets a view; a decision costs ``cost_s`` of server time (the
    manager's VirtualClock in lockstep, a real sleep otherwise). Records overlapping use, which must never
    happen with one slot."""

    name = "fake-shared"

    def __init__(self, cost_s: float, server: VirtualClock | None = None, real: bool = False):
        self.cost_s, self.server, self.real = cost_s, server, real
        self.active = 0
        self.overlaps = 0
        self.lock = threading.Lock()

    def for_streams(self, n: int) -> list[Backend]:
        return [_View(self, i) for i in range(n)]


class _View(Backend):
    name = "fake-shared"

    def __init__(self, model: SharedSlowModel, i: int):
        self.model, self.i = model, i
        self.seen: list[int] = []  # pixel value of each frame observed

    def load(self, config: BackendConfig) -> None:
        pass

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        pass

    def observe(self, turn: Turn) -> None:
        with self.model.lock:
            self.model.active += 1
            self.model.overlaps += self.model.active > 1
        self.seen.append(int(turn.pixels[0, 0, 0]))

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        m = self.model
        if m.real:
            time.sleep(m.cost_s)
        elif m.cost_s:
            m.server.advance(m.cost_s)
        yield "</silence>"

    def commit(self, text: str) -> None:
        with self.model.lock:
            self.model.active -= 1


def run_streams(specs, seconds, cost_s=0.0, fail=None, virtual=True):
    """Run ``specs`` streams of ``seconds`` one-fps frames (stream i's frames have value 10 i + …)."""
    server = VirtualClock()
    model = SharedSlowModel(cost_s, server, real=not virtual)
    views, slots, lock = stream_backends(model, len(specs))
    manager = StreamManager(specs, virtual=virtual, slots=slots, server=server, lock=lock)
    events = {s.name: [] for s in specs}
    for i, spec in enumerate(specs):
        bus = EventBus(spec.name)
        bus.subscribe(events[spec.name].append)
        frames = [(float(t) + 0.5, solid(10 * i + t % 10)) for t in range(seconds)]
        source = ArraySource(frames, fail_after=(fail or {}).get(i))
        manager.attach(i, Session(views[i], source, bus=bus, clock=manager.clock(i)))
    manager.run()
    records = {name: [e for e in evs if e["type"] in ("decision", "skipped")] for name, evs in events.items()}
    return manager, records, views, model, events


def test_each_stream_writes_exactly_one_record_per_second_on_the_virtual_clock():
    specs = [StreamSpec(f"s{i}") for i in range(4)]
    manager, records, views, model, _ = run_streams(specs, seconds=12)
    for i, spec in enumerate(specs):
        assert [r["t"] for r in records[spec.name]] == list(range(12))
        assert all(r["type"] == "decision" for r in records[spec.name])
        assert views[i].inner.seen == [10 * i + t % 10 for t in range(12)]  # its own frames, in order
    assert model.overlaps == 0


def test_a_slow_shared_backend_skips_fairly_over_a_scripted_minute():
    # 4 streams, 0.45 s per decision: about 2.2 of the 4 due ticks fit in each second.
    specs = [StreamSpec(f"s{i}") for i in range(4)]
    manager, records, _, model, _ = run_streams(specs, seconds=60, cost_s=0.45)
    served = []
    for spec in specs:
        recs = records[spec.name]
        assert [r["t"] for r in recs] == list(range(60))  # still one record per second, no backlog
        assert all(r["reason"] == "busy" for r in recs if r["type"] == "skipped")
        kinds = "".join("d" if r["type"] == "decision" else "s" for r in recs)
        assert "sss" not in kinds  # no stream waits three seconds in a row
        served.append(kinds.count("d"))
    assert sum(served) >= 125  # the server is kept busy (60 / 0.45 = 133 fit)
    assert max(served) - min(served) <= 2, served  # and its time is shared evenly
    assert [c.served for c in manager.counts] == served
    assert model.overlaps == 0


def test_an_important_stream_is_never_skipped_while_a_normal_one_is_served():
    specs = [StreamSpec("cam", priority=IMPORTANT)] + [StreamSpec(f"n{i}") for i in range(3)]
    _, records, _, _, _ = run_streams(specs, seconds=30, cost_s=0.6)
    important = records["cam"]
    assert all(r["type"] == "decision" for r in important)
    normal_skips = sum(r["type"] == "skipped" for name in ("n0", "n1", "n2") for r in records[name])
    assert normal_skips >= 30  # not vacuous: the normal streams did lose seconds
    for t in range(30):  # a second the important stream lost is lost by every normal stream too
        if important[t]["type"] == "skipped":
            assert all(records[n][t]["type"] == "skipped" for n in ("n0", "n1", "n2"))


def test_one_streams_bad_source_ends_only_that_stream():
    specs = [StreamSpec(f"s{i}") for i in range(3)]
    manager, records, _, _, events = run_streams(specs, seconds=8, fail={1: 3})
    errors = [e for e in events["s1"] if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["message"] == "decoding failed (fake)"
    assert "\n" not in errors[0]["message"]
    assert manager.errors == [None, "decoding failed (fake)", None]
    assert [r["t"] for r in records["s1"]] == [0, 1, 2]
    for name in ("s0", "s2"):
        assert [r["t"] for r in records[name]] == list(range(8))
        assert events[name][-1]["type"] == "session_ended" and events[name][-1]["error"] is None


def test_real_clock_turns_skip_busy_seconds_without_a_backlog():
    # 3 streams of 4 s on the real clock, 0.4 s per decision: 2.5 decisions fit per second.
    specs = [StreamSpec(f"s{i}") for i in range(3)]
    manager, records, _, model, _ = run_streams(specs, seconds=4, cost_s=0.4, virtual=False)
    for spec in specs:
        assert sorted(r["t"] for r in records[spec.name]) == [0, 1, 2, 3]  # a late tick may land after
    busy = sum(r.get("reason") == "busy" for recs in records.values() for r in recs)
    assert busy >= 1 and all(c.served >= 1 for c in manager.counts)
    assert model.overlaps == 0


def test_real_time_turns_go_to_the_important_stream_first_and_expire_at_their_deadline():
    turns = TurnTaking(Fairness([0, 0, IMPORTANT, 0]))
    assert turns.acquire(0, timeout_s=0.0)  # a free model: granted at once, no waiting
    t0 = time.monotonic()
    assert not turns.acquire(3, timeout_s=0.05)  # held by stream 0: refused at its deadline, not queued
    assert 0.04 <= time.monotonic() - t0 < 1.0
    order = []

    def wait(i):
        if turns.acquire(i, timeout_s=10.0):
            order.append(i)
            turns.release(i)

    waiters = []
    for i in (1, 2):  # the normal stream starts waiting first
        th = threading.Thread(target=wait, args=(i,))
        th.start()
        waiters.append(th)
        while i not in turns._waiting:
            time.sleep(0.001)
    turns.release(0)
    for th in waiters:
        th.join(5.0)
    assert order == [2, 1]


def test_a_chunk_prefix_outside_a_tick_waits_until_the_tick_in_progress_ends():
    # A stream's first chunk prefix is evaluated outside its ticks; on a model holding one sequence's logits
    # at a time it must not fall between another stream's turn and decision.
    model = SharedSlowModel(0.0)
    views, slots, lock = stream_backends(model, 2)
    manager = StreamManager([StreamSpec("a"), StreamSpec("b")], slots=slots, lock=lock)
    gate = StreamGate(manager, 0, manager.clock(0))
    prefix = ChunkPrefix(system="s", text="")
    with gate.turn(0) as granted:
        assert granted
        other = threading.Thread(target=views[1].start_chunk, args=(prefix,))
        other.start()
        other.join(0.2)
        assert other.is_alive()  # held back while stream a's tick runs
    other.join(5.0)
    assert not other.is_alive()


def test_perception_hints_reach_every_stream_view():
    """A hinted backend (``[backend.hints]``) over a shared model gives hinted views, each with its own OCR
    cache; over a backend without a shared model it offers no ``for_streams`` (so the streams build one
    backend per stream, each through ``build_backend`` and hinted there)."""
    from engine.eval.hints import HintedBackend

    class SharedView(_View):
        def for_streams(self, n: int) -> list[Backend]:
            return self.model.for_streams(n)

    model = SharedSlowModel(0.0)
    assert not hasattr(HintedBackend(_View(model, 0)), "for_streams")
    views = HintedBackend(SharedView(model, 0)).for_streams(2)
    assert all(isinstance(v, HintedBackend) and isinstance(v.inner, _View) for v in views)
    assert [v.inner.i for v in views] == [0, 1] and views[0].hints is not views[1].hints
    served, slots, _lock = stream_backends(HintedBackend(SharedView(model, 0)), 2)
    assert slots == 1 and all(isinstance(s.inner, HintedBackend) for s in served)
