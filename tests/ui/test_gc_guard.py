"""Cycles are collected on the GUI thread while the collector runs (a Qt object freed on a worker crashes
PySide6); with automatic collection, as a negative control, the worker that allocates collects them."""

from __future__ import annotations

import gc
import threading

from ui.gc_guard import MainThreadCollector


class _Cycle:
    freed_on: list[int] = []

    def __init__(self):
        self.me = self  # only the cycle collector can free this

    def __del__(self):
        _Cycle.freed_on.append(threading.get_ident())


_kept: list = []


def _allocate_on_a_worker() -> int:
    def churn():
        _kept.append([[] for _ in range(50_000)])  # live containers: past gen-0's threshold many times over

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    return worker.ident


def _garbage_cycle() -> None:
    _Cycle.freed_on.clear()
    _Cycle()
    gc.collect()  # start from empty generations: the cycle made above is the only garbage...
    _Cycle()      # ...once it is made again


def test_cycles_wait_for_the_gui_thread_while_the_collector_runs(qtbot):
    was_enabled = gc.isenabled()
    try:
        gc.enable()  # negative control: automatic collection frees the cycle on the allocating worker
        _garbage_cycle()
        _Cycle.freed_on.clear()
        worker = _allocate_on_a_worker()
        assert _Cycle.freed_on == [worker]

        collector = MainThreadCollector(interval_ms=20)
        assert not gc.isenabled()
        _garbage_cycle()
        _Cycle.freed_on.clear()
        _allocate_on_a_worker()
        assert _Cycle.freed_on == []  # the worker did not collect it
        qtbot.waitUntil(lambda: _Cycle.freed_on != [], timeout=5_000)
        assert _Cycle.freed_on == [threading.get_ident()]  # the GUI thread's timer did
        collector.stop()
        assert gc.isenabled()
    finally:
        _kept.clear()
        (gc.enable if was_enabled else gc.disable)()
