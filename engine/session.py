"""The per-second session loop (DESIGN §2).

Tick ``t`` (t = 0, 1, 2, …) covers stream time [t, t+1) and sees the last frame captured in it.
Every tick gets exactly one record: a ``decision``, or ``skipped`` with a reason (``busy``: the
backend is still working on an earlier tick; ``no_frame``: nothing was captured in that second;
``backend_error``; ``tick``: with ``tick_s`` 2, the second between two decided ones). One backend call is in flight at a time; stale frames are dropped, never queued.

Two drivers share one ``_tick``:

    virtual clock (--fast, tests)      real clock (live sources, real-time files)
    ─────────────────────────────      ─────────────────────────────────────────
    read frames up to t+1              capture thread pushes into the sampler
    run the tick inline                at t+1 take the latest frame; if the worker is
    (the clock waits for the backend,  busy → skipped(busy), else hand it the tick
     so nothing is skipped as busy)
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.backends.base import Backend, BackendError, ModelLoadError
from engine.clock import Clock, RealClock
from engine.context import ChunkPrefix, QueryState, Turn, render_prefix
from engine.events import (
    DecisionMade,
    ErrorRaised,
    EventBus,
    QueryReceived,
    SessionEnded,
    SessionStarted,
    Skipped,
    Summary,
)
from engine.frames import DEFAULT_MAX_PIXELS, Frame, FrameSampler, SampledFrame
from engine.memory import Memory, MemoryOptions
from engine.prompts import system_prompt
from engine.protocol import Decision, Talkativeness, TalkOptions, normalize
from engine.source import FrameSource, SourceError


class TickGate(Protocol):
    """A stream's turn on a backend shared with other streams (engine/streams.py implements it)."""

    def turn(self, t: int) -> AbstractContextManager[bool]:
        """Held while second ``t`` uses the backend; yields False when no turn came in time."""


class DelegationHook(Protocol):
    """What the session needs from a delegator (engine/delegation.py implements it)."""

    def observe_frame(self, frame: Frame) -> None: ...

    def on_tick(self, tick: Tick) -> None: ...

    def take_notes(self) -> list[str]: ...

    def close(self) -> None: ...


@dataclass
class SessionOptions:
    """Session settings with their documented defaults.

    max_tokens: decision length cap. max_pixels: frames are resized to at most this many pixels.
    duration_s: stop after this many ticks (None = until the source ends or ``stop``).
    mode / delegation: which system prompt the backend gets (``native`` JoyAI or ``prompt`` mode).
    """

    max_tokens: int = 128
    max_pixels: int = DEFAULT_MAX_PIXELS
    duration_s: float | None = None
    mode: str = "prompt"
    delegation: bool = True
    source_label: str = ""
    talk: TalkOptions = field(default_factory=TalkOptions)
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    keep_summary_frames: bool = True
    tick_s: int = 1  # [backend] tick_s: decide every tick_s-th second; the others are skipped(tick)


@dataclass
class Tick:
    """What one second produced, published to ``Session.tick_listeners`` right after its record (the
    ``decision`` or ``skipped`` event) is emitted. The delegator, the memory and the window's preview
    subscribe to it; nothing reaches into the session for it.

    pixels: the frame the model saw (resized RGB [h, w, 3]); None when there was none.
    decision: the committed decision (None for a skipped second).
    query: an instruction that arrived this second; standing_query: the one in force.
    notes: brain digests folded into this turn. thumb: the small frame kept for the summarizer.
    """

    t: int
    pixels: np.ndarray | None
    record: dict
    decision: Decision | None = None
    query: str = ""
    standing_query: str = ""
    notes: list[str] = field(default_factory=list)
    thumb: np.ndarray | None = None


@dataclass
class SessionResult:
    ticks: int = 0
    decisions: int = 0
    responses: int = 0
    skipped: int = 0
    error: str | None = None
    error_kind: str | None = None  # "source" | "backend" | "write" | None


class Session:
    def __init__(
        self,
        backend: Backend,
        source: FrameSource,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        options: SessionOptions | None = None,
        memory: Memory | None = None,
        delegator: DelegationHook | None = None,
        on_delta: Callable[[int, str], None] | None = None,
    ):
        self.backend = backend
        self.source = source
        self.bus = bus or EventBus()
        self.clock = clock or RealClock()
        self.options = options or SessionOptions()
        self.memory = memory or Memory(self.options.memory, on_summary=self._on_summary)
        if memory is not None and memory.on_summary is None:
            memory.on_summary = self._on_summary
        self.delegator = delegator
        # Subscribers to what the session produces besides bus events: the decision's text as it is
        # generated (the window streams it) and each second's Tick (the window's live preview).
        self.delta_listeners: list[Callable[[int, str], None]] = [on_delta] if on_delta else []
        self.tick_listeners: list[Callable[[Tick], None]] = []
        if delegator is not None:
            self.tick_listeners.append(delegator.on_tick)
        self.tick_listeners.append(self.memory.on_tick)
        self.sampler = FrameSampler(self.options.max_pixels)
        self.talk = Talkativeness(self.options.talk)
        self.queries = QueryState()
        self._inbox: queue.Queue[tuple[str, str]] = queue.Queue()
        self._scheduled: list[tuple[float, str, str]] = []  # (stream time, kind, text), virtual mode
        self._stop = threading.Event()
        self._write_error: str | None = None
        self._last_backend_error = ""
        self._paused = threading.Event()
        self._pause_lock = threading.Lock()
        self._paused_at = 0.0
        self._paused_total = 0.0  # stream seconds a file stood still (its later frames move on by this)
        self.result = SessionResult()
        self._last_t = -1
        self._source_open = False
        # Several streams on one model (engine/streams.py): the second's turn on the shared backend.
        self.gate: TickGate | None = None

    # --- inputs from the UI / CLI / ASR (thread-safe) --------------------------------------------
    def submit_query(self, text: str, source: str = "typed", at: float | None = None) -> None:
        """A typed or spoken instruction. With ``at`` (stream time) it is scheduled — for scripted
        sessions on the virtual clock; otherwise it enters the next tick."""
        if at is not None:
            self._scheduled.append((float(at), source, text))
            self._scheduled.sort(key=lambda x: x[0])
        else:
            self._inbox.put((source, text))

    def write_failed(self, message: str) -> None:
        """A durable sink cannot write (any thread): end the session cleanly at the next tick."""
        if self._write_error is None:
            self._write_error = message
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if isinstance(self.clock, RealClock):
            self.clock.stop()

    def pause(self, paused: bool = True) -> None:
        """While paused, ticks are recorded as skipped(paused), the backend is not called, a file
        source stops playing (it resumes where it stood) and a live source grabs nothing — the privacy
        pause: what is on the screen meanwhile is never read, so it cannot reach the model later."""
        with self._pause_lock:
            if paused and not self._paused.is_set():
                self._paused_at = self.clock.now()
                self._paused.set()
                if self.source.live:
                    self.source.pause()
            elif not paused and self._paused.is_set():
                self._paused_total += self.clock.now() - self._paused_at
                self._paused.clear()
                if self.source.live:
                    self.source.resume()

    def open_source(self) -> None:
        """Open the source now (idempotent), so a bad source fails before anything else starts."""
        if not self._source_open:
            self.source.open()
            self._source_open = True

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> SessionResult:
        o = self.options
        self.bus.publish(0.0, SessionStarted(source=o.source_label, backend=self.backend.name, mode=o.mode,
                                             max_pixels=o.max_pixels, virtual_clock=bool(self.clock.is_virtual)))
        try:
            self.backend.start_chunk(self._prefix())
            if self.clock.is_virtual:
                self._run_virtual()
            else:
                self._run_realtime()
        except SourceError as exc:
            self._fail("source", str(exc))
        except BackendError as exc:
            self._fail("backend", str(exc))
        finally:
            if self._write_error is not None:  # written wherever it still can be (the other sink, stderr)
                self._fail("write", self._write_error)
            elif self.result.decisions == 0 and self._last_backend_error:  # never answered once: not a success
                self._fail("backend", f"the backend never answered ({self._last_backend_error})")
            self.memory.close()
            if self.delegator is not None:
                self.delegator.close()
            r = self.result
            self.bus.publish(max(self._last_t + 1, 0), SessionEnded(
                ticks=r.ticks, decisions=r.decisions, responses=r.responses, skipped=r.skipped, error=r.error,
                frames_dropped=self.sampler.dropped))
        return self.result

    def _fail(self, kind: str, message: str) -> None:
        if self.result.error is None:
            self.result.error, self.result.error_kind = message, kind
            self.bus.publish(max(self._last_t, 0), ErrorRaised(where=kind, message=message))

    def _accept(self, frame: Frame) -> None:
        self.sampler.push(frame)
        if self.delegator is not None:
            self.delegator.observe_frame(frame)

    def _limit_reached(self, t: int) -> bool:
        d = self.options.duration_s
        return self._stop.is_set() or (d is not None and t >= d)

    def _run_virtual(self) -> None:
        self.open_source()
        frames = self.source.frames()
        ahead: Frame | None = None
        exhausted = False
        failure: SourceError | None = None  # reported after the last decoded second is logged
        t = 0
        while not self._limit_reached(t):
            got_frame = False
            while not exhausted:
                if ahead is None:
                    try:
                        ahead = next(frames)
                    except StopIteration:
                        exhausted = True
                        break
                    except SourceError as exc:
                        exhausted, failure = True, exc
                        break
                if ahead.t < t + 1:
                    self._accept(ahead)
                    got_frame, ahead = True, None
                else:
                    break
            if exhausted and not got_frame and ahead is None:
                break
            self.clock.sleep_until(t)
            # an off-beat second leaves its frame to the next decided one (the sampler keeps the latest)
            self._tick(t, None if self._off_beat(t) else self.sampler.take(before=t + 1))
            t += 1
        self.source.close()
        if failure is not None:
            self._fail("source", str(failure))

    def _run_realtime(self) -> None:
        self.open_source()
        capture_done = threading.Event()
        last_frame_t = [-1.0]

        def capture() -> None:
            try:
                for frame in self.source.frames():
                    if self._stop.is_set():
                        break
                    if self.source.live:
                        if self._paused.is_set():
                            continue  # grabbed just before the pause reached the source: never seen
                        frame = dataclasses.replace(frame, t=self.clock.now())
                    else:
                        while True:  # pace a file in real time; a pause (even mid-wait) holds this frame
                            while self._paused.is_set() and not self._stop.is_set():
                                time.sleep(0.05)
                            self.clock.sleep_until(frame.t + self._paused_total)
                            if not self._paused.is_set() or self._stop.is_set():
                                break
                        if self._paused_total:
                            frame = dataclasses.replace(frame, t=frame.t + self._paused_total)
                    last_frame_t[0] = frame.t
                    self._accept(frame)
            except SourceError as exc:
                self._fail("source", str(exc))
            finally:
                capture_done.set()

        reader = threading.Thread(target=capture, name="capture", daemon=True)
        reader.start()
        worker = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        in_flight: cf.Future | None = None
        t = 0
        try:
            while not self._limit_reached(t):
                self.clock.sleep_until(t + 1)
                if self._stop.is_set():
                    break
                if capture_done.is_set() and last_frame_t[0] < t:
                    break
                if self._paused.is_set():  # the frame and any instruction wait for the first tick after
                    self._skip(t, "paused")
                    t += 1
                    continue
                if self._off_beat(t):  # before the busy check: an off-beat second is never a busy one
                    self._skip(t, "tick")
                    t += 1
                    continue
                sampled = self.sampler.take(before=t + 1)
                if in_flight is not None and not in_flight.done():
                    self._skip(t, "busy")
                else:
                    if in_flight is not None:
                        in_flight.result()  # re-raise a fatal backend error from the last tick
                    in_flight = worker.submit(self._tick, t, sampled)
                t += 1
            if in_flight is not None:
                in_flight.result()
        finally:
            self._stop.set()
            self.source.close()
            worker.shutdown(wait=True)
            reader.join(timeout=2.0)

    # --- one tick -----------------------------------------------------------------------------
    def _skip(self, t: int, reason: str, pixels: np.ndarray | None = None, **extra) -> None:
        self.result.ticks += 1
        self.result.skipped += 1
        self._last_t = max(self._last_t, t)
        self._publish(Tick(t, pixels, self.bus.publish(t, Skipped(reason=reason), **extra)))

    def _publish(self, tick: Tick) -> None:
        for listener in list(self.tick_listeners):
            listener(tick)

    def _drain_queries(self, t: int) -> str | None:
        """Queries that arrive this tick; returns the new standing query if it changed."""
        arrived: list[tuple[str, str]] = []
        while self._scheduled and self._scheduled[0][0] < t + 1:
            _, src, text = self._scheduled.pop(0)
            arrived.append((src, text))
        while True:
            try:
                arrived.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        changed = None
        for src, text in arrived:
            if self.queries.submit(text, t):
                changed = self.queries.standing
                self.bus.publish(t, QueryReceived(text=self.queries.standing, source=src))
        return changed

    def _off_beat(self, t: int) -> bool:
        """With ``tick_s`` 2 (slow hardware) only even seconds are decided; the frame and any instruction of
        an odd second wait for the next decided one, which sees the latest frame, as any tick does."""
        return t % max(1, self.options.tick_s) != 0

    def _tick(self, t: int, sampled: SampledFrame | None) -> None:
        """With a gate (a model shared by several streams), a second that will call the backend first
        waits for its turn; a turn not given in time is skipped(busy), and its query waits for the next."""
        if self._off_beat(t):
            return self._skip(t, "tick")
        if self.gate is None or (sampled is None and self.backend.wants_frames):
            return self._tick_now(t, sampled)
        with self.gate.turn(t) as granted:
            return self._tick_now(t, sampled) if granted else self._skip(t, "busy")

    def _tick_now(self, t: int, sampled: SampledFrame | None) -> None:
        t_start = time.perf_counter()
        new_query = self._drain_queries(t)
        self.memory.poll()
        if self._paused.is_set():
            return self._skip(t, "paused", sampled.pixels if sampled else None)
        if sampled is None and self.backend.wants_frames:
            return self._skip(t, "no_frame")
        notes = self.delegator.take_notes() if self.delegator is not None else []
        turn = Turn(t=t, pixels=sampled.pixels if sampled else None, query=new_query, notes=notes,
                    change=sampled.change if sampled else 0.0, standing_query=self.queries.standing)
        capture_ms = (time.perf_counter() - t_start) * 1000
        try:
            t0 = time.perf_counter()
            self.backend.observe(turn)
            t1 = time.perf_counter()
            raw = ""
            for piece in self.backend.decide(self.options.max_tokens):
                raw += piece
                for listener in self.delta_listeners:
                    listener(t, raw)
            decision = normalize(raw, self.queries.standing)
            decision = self.talk.apply(decision, t, has_query=bool(self.queries.standing))
            self.backend.commit(decision.canonical())
            t2 = time.perf_counter()
        except ModelLoadError:
            raise
        except BackendError as exc:
            self.bus.publish(t, ErrorRaised(where="backend", message=str(exc)))
            self._last_backend_error = str(exc)
            return self._skip(t, "backend_error")
        stats = self.backend.stats()
        total_ms = (time.perf_counter() - t_start) * 1000
        self.result.ticks += 1
        self.result.decisions += 1
        self.result.responses += decision.action != "silence"
        self._last_t = max(self._last_t, t)
        record = self.bus.publish(t, DecisionMade(
            action=decision.action, text=decision.text,
            latency_ms={"capture": round(capture_ms, 2), "prefill": round((t1 - t0) * 1000, 2),
                        "decide": round((t2 - t1) * 1000, 2), "total": round(total_ms, 2)},
            tokens={"context": stats.tokens_context, "new": stats.tokens_new},
            kv_bytes={"fast": stats.kv_bytes_fast, "offload": stats.kv_bytes_offload, "used": stats.kv_bytes_used},
            delegate_query=decision.delegate_query if decision.action == "delegate" else None,
            suppressed=decision.reason or None,
            change=round(sampled.change, 4) if sampled is not None else None,
        ))
        if decision.action != "silence":
            self.queries.record_response(t, decision.text)
        pixels = sampled.pixels if sampled is not None else None
        thumb = pixels[::4, ::4].copy() if (pixels is not None and self.options.keep_summary_frames) else None
        self._publish(Tick(t, pixels, record, decision=decision, query=new_query or "",
                           standing_query=self.queries.standing, notes=notes, thumb=thumb))
        if self.memory.is_boundary(t):
            self.memory.boundary(t)
            self.backend.start_chunk(self._prefix())

    def _prefix(self) -> ChunkPrefix:
        o = self.options
        return ChunkPrefix(
            system=system_prompt(o.mode, o.delegation, o.talk.persona),
            text=render_prefix(self.memory.prefix_text(), self.queries),
        )

    def _on_summary(self, kind: str, text: str, start_t: int, end_t: int, latency_s: float) -> None:
        self.bus.publish(max(self._last_t, 0), Summary(kind=kind, summary=text, start_t=start_t, end_t=end_t,
                                                       latency_ms=round(latency_s * 1000, 1)))
