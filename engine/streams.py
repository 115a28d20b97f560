"""Several streams, one model: N sessions (each with its own clock, context, memory, log, store and standing
query) take turns on one shared backend, and every stream still gets exactly one record per second.

    stream 1: Session ─┐ gate.turn(t)                      ┌─▶ per-stream backend (llama.cpp sequence 1)
    stream 2: Session ─┼──────────▶ TurnTaking (slots) ────┼─▶ per-stream backend (llama.cpp sequence 2)  one
    stream N: Session ─┘ granted / skipped(busy)            └─▶ …                                          model

The rule, per stream and per second: tick ``t`` is due when its second ends (stream time ``t + 1``) and
must start before the next one is due (``t + 2``); a turn not given by then is ``skipped(busy)`` — never a
queue. When the backend frees, the waiting stream with the highest ``priority`` goes first, then the one
served least recently (round robin), so no stream starves and an important stream is skipped only when
nothing lower was served in its place. ``slots`` is how many streams the backend serves at once: 1 for a
model in this process (its sequences run one after another), N for a server, which batches them itself.

Two drivers, as for one session:

    real clock                                   virtual clock (tests, --fast)
    ──────────                                   ─────────────────────────────
    each session runs its own real-time loop;    each session runs on its own thread but one second at a
    a tick waits for its turn until t + 2        time (``StepClock``), in the scheduler's order; backend
                                                 time is read from a shared ``VirtualClock`` (a scripted
                                                 slow backend advances it), so a scripted minute of
                                                 contention is deterministic. A real model takes no
                                                 virtual time: nothing is skipped, as with one session.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine.backends.base import Backend, BackendError, BackendStats
from engine.clock import RealClock, VirtualClock
from engine.context import ChunkPrefix, Turn
from engine.session import Session, SessionResult


@dataclass
class StreamSpec:
    """One stream: its name (in logs, the transcript and file names) and its priority (higher is served
    first; ``IMPORTANT`` for a stream marked important)."""

    name: str
    priority: int = 0


IMPORTANT = 1
GIVE_UP_EARLY_S = 0.05  # real clock: a turn not given by t + 2 - this is skipped(busy)


@dataclass
class StreamCounts:
    served: int = 0  # seconds that got a turn on the backend
    busy: int = 0  # seconds skipped because no turn came in time


class Fairness:
    """Who goes next: highest priority, then least recently served, then the stream's index."""

    def __init__(self, priorities: list[int]):
        self.priorities = list(priorities)
        self._last = [-1] * len(priorities)
        self._serial = 0

    def key(self, i: int) -> tuple[int, int, int]:
        return (-self.priorities[i], self._last[i], i)

    def order(self, streams) -> list[int]:
        return sorted(streams, key=self.key)

    def served(self, i: int) -> None:
        self._serial += 1
        self._last[i] = self._serial


class TurnTaking:
    """Real-time turns on the shared backend: at most ``slots`` streams at once; a stream waits for its
    turn until a deadline, then gives up (the session records skipped(busy))."""

    def __init__(self, fairness: Fairness, slots: int = 1):
        self.fairness, self.slots = fairness, max(1, slots)
        self._cond = threading.Condition()
        self._holders: set[int] = set()
        self._waiting: set[int] = set()

    def acquire(self, i: int, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        with self._cond:
            self._waiting.add(i)
            try:
                while True:
                    free = len(self._holders) < self.slots
                    if free and min(self._waiting, key=self.fairness.key) == i:
                        self._holders.add(i)
                        return True
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            finally:
                self._waiting.discard(i)
                self._cond.notify_all()

    def release(self, i: int) -> None:
        with self._cond:
            self._holders.discard(i)
            self.fairness.served(i)
            self._cond.notify_all()


class Lockstep:
    """The virtual-clock driver: sessions run one second at a time in the scheduler's order. Backend time
    is ``server`` (a VirtualClock that only a scripted backend advances); ``slots`` servers run in parallel."""

    def __init__(self, n: int, fairness: Fairness, server: VirtualClock, slots: int = 1):
        self.n, self.fairness, self.server = n, fairness, server
        self._free = [0.0] * max(1, slots)  # when each server slot is free again (server time)
        self._cond = threading.Condition()
        self._at: dict[int, float] = {}  # stream -> the second it waits to run
        self._go: set[int] = set()
        self._ended: set[int] = set()
        self._granted: dict[int, bool] = {}
        self._used: set[int] = set()
        self._stopping = False

    # --- the session threads' side (StepClock and the gate) ---
    def wait_turn_to_run(self, i: int, t: float) -> None:
        with self._cond:
            self._at[i] = t
            self._cond.notify_all()
            self._cond.wait_for(lambda: i in self._go or self._stopping)
            self._go.discard(i)

    def granted(self, i: int) -> bool:
        return self._granted.get(i, False) and not self._stopping  # stopping: the last ticks are skipped

    def used(self, i: int) -> None:
        self._used.add(i)

    def ended(self, i: int) -> None:
        with self._cond:
            self._ended.add(i)
            self._at.pop(i, None)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # --- the driver (the caller's thread) ---
    def drive(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or all(
                    i in self._at or i in self._ended for i in range(self.n)))
                if self._stopping or not self._at:
                    return
                t = min(self._at.values())
                ready = [i for i, at in self._at.items() if at == t]
            for i in self.fairness.order(ready):
                slot = min(range(len(self._free)), key=self._free.__getitem__)
                start = max(self._free[slot], t + 1)  # due when its second ends
                grant = start < t + 2  # and started before the next second is due, or not at all
                if grant:
                    self.server.sleep_until(start)
                with self._cond:
                    self._granted[i] = grant
                    self._used.discard(i)
                    del self._at[i]
                    self._go.add(i)
                    self._cond.notify_all()
                    self._cond.wait_for(lambda i=i: i in self._at or i in self._ended or self._stopping)
                if i in self._used:
                    self._free[slot] = max(start, self.server.now())
                    self.fairness.served(i)


class StepClock:
    """A stream's own virtual clock under ``Lockstep``: ``sleep_until(t)`` waits until the driver runs
    second ``t`` of this stream."""

    is_virtual = True

    def __init__(self, lockstep: Lockstep, index: int):
        self._lockstep, self._index, self._t = lockstep, index, 0.0

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._lockstep.wait_turn_to_run(self._index, t)
        self._t = max(self._t, float(t))


class StreamClock(RealClock):
    """A stream's real clock, started when the streams start (not when their sessions were built), so that
    building N sessions does not eat into their first seconds."""

    def start(self) -> None:
        self._t0 = time.monotonic()


class StreamGate:
    """``Session.gate`` for stream ``index``: its turn on the shared backend for second ``t``."""

    def __init__(self, manager: StreamManager, index: int, clock):
        self.manager, self.index, self.clock = manager, index, clock

    @contextlib.contextmanager
    def turn(self, t: int) -> Iterator[bool]:
        m, i = self.manager, self.index
        if m.lockstep is not None:
            granted = m.lockstep.granted(i)
            if granted:
                m.lockstep.used(i)
        else:
            # Give up a moment before the next second is due, so that second finds this one done.
            granted = m.turns.acquire(i, timeout_s=(t + 2) - GIVE_UP_EARLY_S - self.clock.now())
        counts = m.counts[i]
        if not granted:
            counts.busy += 1
            yield False
            return
        counts.served += 1
        try:
            # The model is this stream's for the whole tick: a chunk prefix another stream evaluates outside
            # its ticks (its first one) waits, rather than falling between this tick's turn and decision.
            with m.lock or contextlib.nullcontext():
                yield True
        finally:
            if m.lockstep is None:
                m.turns.release(i)


class SerializedBackend(Backend):
    """A per-stream backend whose every call holds the shared model's lock: the turn-taking covers each
    tick, and this covers what a session does outside a tick (its first chunk prefix, closing)."""

    def __init__(self, inner: Backend, lock: threading.RLock):
        self.inner, self.lock = inner, lock
        self.name, self.wants_frames = inner.name, inner.wants_frames

    def load(self, config) -> None:  # the shared model is loaded once, before the views exist
        raise BackendError("a stream's backend is a view of a loaded model")

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        with self.lock:
            self.inner.start_chunk(prefix)

    def observe(self, turn: Turn) -> None:
        with self.lock:
            self.inner.observe(turn)

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        with self.lock:
            yield from self.inner.decide(max_tokens)

    def commit(self, text: str) -> None:
        with self.lock:
            self.inner.commit(text)

    def stats(self) -> BackendStats:
        with self.lock:
            return self.inner.stats()

    def close(self) -> None:
        with self.lock:
            self.inner.close()


def stream_backends(shared: Backend, n: int, make: Callable[[], Backend] | None = None
                    ) -> tuple[list[Backend], int, threading.RLock | None]:
    """``n`` per-stream backends on ``shared``'s one loaded model, how many streams it serves at once, and
    the model's lock when it serves one at a time (``StreamManager(lock=…)`` holds it for each tick).

    A backend with ``for_streams(n)`` gives views of its one model (llamacpp: a sequence each; openai: a
    conversation each, ``serves_concurrently``). Otherwise ``make`` builds an independent backend per
    stream (no model to share: heuristic); without it, more than one stream is refused with one line."""
    if hasattr(shared, "for_streams"):  # a view even for one stream: the shared model outlives the streams
        views = shared.for_streams(n)
        if getattr(shared, "serves_concurrently", False):
            return views, n, None
        lock = threading.RLock()
        return [SerializedBackend(v, lock) for v in views], 1, lock
    if n <= 1:
        return [shared], 1, None
    if make is not None:
        return [shared] + [make() for _ in range(n - 1)], n, None
    raise BackendError(f"the {shared.name} backend cannot serve several streams from one loaded model; "
                       "use the llamacpp or openai backend")


@dataclass
class StreamManager:
    """Runs N streams on one backend. ``virtual``: the lockstep driver on ``server`` time (see the module
    doc). Call ``clock(i)`` to get the clock stream ``i``'s session must use, ``attach(i, session)`` once it
    is built (or ``failed(i, message)`` when it could not be), then ``run()``."""

    specs: list[StreamSpec]
    virtual: bool = False
    slots: int = 1
    server: VirtualClock = field(default_factory=VirtualClock)
    lock: threading.RLock | None = None  # the shared model's (stream_backends), held for each tick
    sessions: list[Session | None] = field(init=False)
    counts: list[StreamCounts] = field(init=False)
    results: list[SessionResult | None] = field(init=False)
    errors: list[str | None] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.specs)
        self.fairness = Fairness([s.priority for s in self.specs])
        self.lockstep = Lockstep(n, self.fairness, self.server, self.slots) if self.virtual else None
        self.turns = TurnTaking(self.fairness, self.slots)
        self.sessions, self.results, self.errors = [None] * n, [None] * n, [None] * n
        self.counts = [StreamCounts() for _ in range(n)]
        self._clocks = [StepClock(self.lockstep, i) if self.lockstep else StreamClock() for i in range(n)]

    def clock(self, i: int):
        return self._clocks[i]

    def attach(self, i: int, session: Session) -> None:
        session.gate = StreamGate(self, i, self._clocks[i])
        self.sessions[i] = session

    def failed(self, i: int, message: str) -> None:
        """Stream ``i`` could not start (its source, say): it ends alone, the others run."""
        self.errors[i] = message
        if self.lockstep is not None:
            self.lockstep.ended(i)

    def run(self) -> list[SessionResult | None]:
        threads = []
        for clock in self._clocks:
            if isinstance(clock, StreamClock):
                clock.start()
        for i, session in enumerate(self.sessions):
            if session is None:
                if self.lockstep is not None:
                    self.lockstep.ended(i)  # never attached: the others do not wait for it
                continue
            th = threading.Thread(target=self._run_one, args=(i, session), name=f"stream-{self.specs[i].name}",
                                  daemon=True)
            th.start()
            threads.append(th)
        if self.lockstep is not None:
            self.lockstep.drive()
        for th in threads:
            th.join()
        return self.results

    def _run_one(self, i: int, session: Session) -> None:
        try:
            self.results[i] = session.run()
            if self.results[i].error:
                self.errors[i] = self.results[i].error
        except Exception as exc:  # noqa: BLE001 - one stream's failure ends only that stream
            self.errors[i] = f"{type(exc).__name__}: {exc}"
        finally:
            if self.lockstep is not None:
                self.lockstep.ended(i)

    def stop(self) -> None:
        for s in self.sessions:
            if s is not None:
                s.stop()
        if self.lockstep is not None:
            self.lockstep.stop()
