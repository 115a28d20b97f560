"""Runs one session off the GUI thread (Qt-free). Building it (which may load a model for seconds)
happens on the worker thread too, so the window never freezes. Everything the engine says goes into
``sink`` (the window's thread-safe queue): bus events, streamed deltas, and ``_runner`` pseudo-events
for build errors and the end of the run. The frame the model saw each tick reaches ``on_frame``
through the session's tick listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.config import Settings


@dataclass
class RunOptions:
    fast: bool = False
    log: str | None = None
    store: str | None = None
    duration: float | None = None
    query: str = ""
    exclude: Callable[[], list] | None = None  # screen rectangles masked out of screen captures


class WorkerThread:
    """One daemon thread that builds and runs something for the window; ``stop`` may come before the build
    ends (subclasses check ``_stop_requested`` once built). Base of ``EngineRunner`` and ``StreamsRunner``."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self._stop_requested = threading.Event()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _start(self, target: Callable, args: tuple, name: str, busy: str) -> None:
        if self.running:
            raise RuntimeError(busy)
        self._stop_requested.clear()
        self.thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self.thread.start()

    def join(self, timeout: float | None = None) -> bool:
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


class EngineRunner(WorkerThread):
    def __init__(self, sink: Callable[[dict], None], on_delta: Callable[[int, str], None],
                 on_frame: Callable[[object], None] | None = None, build=None):
        super().__init__()
        self.sink = sink
        self.on_delta = on_delta
        self.on_frame = on_frame
        self._build = build  # test seam: a function(settings, **kw) -> Built; default app.wiring.build_session
        self.report: Callable[[str], None] = lambda line: sink({"type": "_runner", "state": "notice",
                                                                 "message": line, "t": 0.0})
        self.built = None
        self._pending_queries: list[str] = []
        self.last_store = None  # (store path, session id) of the latest session, for corrections
        self._lock = threading.Lock()

    def start(self, settings: Settings, opts: RunOptions) -> None:
        self._start(self._run, (settings, opts), "presence-engine", "a session is already running")

    def _run(self, settings: Settings, opts: RunOptions) -> None:
        from engine.backends.base import BackendError
        from engine.source import SourceError

        build = self._build
        if build is None:
            from app.wiring import build_session as build
        try:
            built = build(settings, fast=opts.fast, log=opts.log, store=opts.store, duration=opts.duration,
                          report=self.report, exclude=opts.exclude)
        except (SourceError, BackendError, OSError, ValueError) as exc:
            kind = "source" if isinstance(exc, SourceError) else "backend"
            self.sink({"type": "_runner", "state": "failed", "where": kind, "message": str(exc), "t": 0.0})
            return
        except Exception as exc:  # noqa: BLE001 - any build failure is a banner, never a dead window
            self.sink({"type": "_runner", "state": "failed", "where": "backend",
                       "message": f"{type(exc).__name__}: {exc}", "t": 0.0})
            return
        session = built.session
        session.delta_listeners.append(self.on_delta)
        if self.on_frame is not None:
            on_frame = self.on_frame
            session.tick_listeners.append(lambda tick: tick.pixels is not None and on_frame(tick.pixels))
        built.bus.subscribe(self.sink)
        with self._lock:
            self.built = built
            self.last_store = (built.store_path, built.bus.session)
            queued, self._pending_queries = self._pending_queries, []
        if opts.query:
            session.submit_query(opts.query, source="cli", at=0.0 if opts.fast else None)
        for q in queued:
            session.submit_query(q, source="typed")
        if self._stop_requested.is_set():
            session.stop()
        self.sink({"type": "_runner", "state": "running", "t": 0.0, "session": built.bus.session})
        try:
            result = session.run()
            self.sink({"type": "_runner", "state": "ended", "t": 0.0, "error": result.error,
                       "where": result.error_kind})
        except Exception as exc:  # noqa: BLE001 - keep the GUI alive whatever the engine does
            self.sink({"type": "_runner", "state": "failed", "where": "backend",
                       "message": f"{type(exc).__name__}: {exc}", "t": 0.0})
        finally:
            built.close()

    # --- controls (GUI thread; never block) ---
    def submit_query(self, text: str) -> None:
        with self._lock:
            if self.built is None:
                self._pending_queries.append(text)
                return
            session = self.built.session
        session.submit_query(text, source="typed")

    def pause(self, paused: bool) -> None:
        if self.built is not None:
            self.built.session.pause(paused)

    @property
    def voice(self):
        """The running session's Voice (None when no session or voice is off in settings and never
        switched on)."""
        return self.built.voice if self.built is not None else None

    def stop(self) -> None:
        self._stop_requested.set()
        if self.built is not None:
            self.built.session.stop()
