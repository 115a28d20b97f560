"""Events reach a durable sink from several threads at once (the engine's tick worker publishes a
decision while the session loop publishes the next second's ``skipped(busy)``). The guard in front of
the sink must write each exactly once, in order of arrival: two overlapping flushes used to write the
same held event twice (seen as a repeated second in the store of a kill -9 run)."""

from __future__ import annotations

import threading
import time

from engine.sinks import GuardedSink, StorageOptions


class SlowSink:
    """A sink that takes a while per write (a busy disk), so writes from two threads overlap."""

    def __init__(self):
        self.written: list[int] = []
        self._lock = threading.Lock()  # like JsonlLog / SqliteStore: one write at a time

    def __call__(self, event) -> None:
        with self._lock:
            time.sleep(0.01)
            self.written.append(event["t"])


def test_concurrent_events_are_each_written_once():
    sink = SlowSink()
    guard = GuardedSink(sink, StorageOptions(), on_stop=lambda _m: None)
    start = threading.Barrier(4)

    def publish(first: int) -> None:
        start.wait()
        for t in range(first, first + 100, 4):
            guard({"t": t, "type": "decision"})

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(sink.written) == list(range(100)) and not guard.held
    for i in range(4):  # each thread's own events stay in its order
        mine = [t for t in sink.written if t % 4 == i]
        assert mine == sorted(mine)
