"""Runs several streams (``app.wiring.build_streams``) off the GUI thread, Qt-free, as ``app/runner.py`` runs
one session: building (which may load a model for seconds) happens on the worker thread too. Every event of
every stream goes into ``sink`` (the window's thread-safe queue) with ``stream`` set to its name; ``_runner``
pseudo-events say when the streams run, fail to start, or have ended."""

from __future__ import annotations

from collections.abc import Callable

from app.config import Settings
from app.runner import WorkerThread


class StreamsRunner(WorkerThread):
    def __init__(self, sink: Callable[[dict], None], build=None):
        super().__init__()
        self.sink = sink
        self._build = build  # test seam: a function(settings, sources, **kw) -> BuiltStreams
        self.manager = None

    def start(self, settings: Settings, sources: list[str], important: tuple[int, ...] = (), fast: bool = False,
              duration: float | None = None) -> list[str]:
        """Start one stream per source; returns the streams' names (``s1``, ``s2``, …, in order)."""
        self._start(self._run, (settings, list(sources), important, fast, duration), "presence-streams",
                    "streams are already running")
        return [f"s{i + 1}" for i in range(len(sources))]

    def _run(self, settings: Settings, sources: list[str], important, fast: bool, duration) -> None:
        build = self._build
        if build is None:
            from app.wiring import build_streams as build

        def report(line: str) -> None:
            self.sink({"type": "_runner", "state": "notice", "message": line, "t": 0.0})

        try:
            built = build(settings, sources, important=tuple(important), fast=fast, duration=duration, report=report)
        except Exception as exc:  # noqa: BLE001 - any build failure is a banner, never a dead window
            self.sink({"type": "_runner", "state": "failed", "message": f"{exc}", "t": 0.0})
            return
        self.manager = built.manager
        for spec, one in zip(built.manager.specs, built.streams, strict=True):
            if one is not None:
                one.bus.subscribe(lambda e, name=spec.name: self.sink({**e, "stream": name}))
        if self._stop_requested.is_set():
            built.manager.stop()
        self.sink({"type": "_runner", "state": "running", "t": 0.0})
        try:
            built.manager.run()
        finally:
            built.close()
            errors = {s.name: e for s, e in zip(built.manager.specs, built.manager.errors, strict=True) if e}
            self.sink({"type": "_runner", "state": "ended", "t": 0.0, "errors": errors})

    def stop(self) -> None:
        self._stop_requested.set()
        if self.manager is not None:
            self.manager.stop()
