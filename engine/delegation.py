"""Delegation: hard questions go to the brain in the background while the stream goes on.

    tick t: decision = delegate(note, question)
        │ snapshot the frame ring (≤100 frames at 2× the tick rate, long edge 768, JPEG q82)
        ▼
    worker pool (bounded) ── brain.ask(question, context, frames) ── timeout (600 s default)
        │ delegate_started ............................................ delegate_result / _error
        ▼
    digest (≤3,500 chars, <summary> preferred) ── queued as a note ── tick t+k: the model sees
                                                                     "[Background result …]"

The tick loop never waits on a brain: ``on_decision`` only submits, ``take_notes`` only drains.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from engine.brain import Brain, BrainError, digest, quote_untrusted
from engine.events import DelegateError, DelegateResult, DelegateStarted, EventBus
from engine.frames import Frame
from engine.protocol import Decision


@dataclass
class DelegationOptions:
    timeout_s: float = 600.0
    max_concurrent: int = 2
    max_pending: int = 8  # tasks beyond this are refused with a delegate_error (never queued forever)
    ring_frames: int = 100
    ring_fps: float = 2.0  # 2× the 1 Hz tick rate
    long_edge: int = 768
    jpeg_quality: int = 82
    frames_to_brain: int = 8  # sampled from the ring for brains that take images


def encode_jpeg(rgb, long_edge: int, quality: int) -> bytes:
    h, w = rgb.shape[:2]
    scale = min(1.0, long_edge / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


@dataclass
class Task:
    id: str
    t: float
    question: str
    future: cf.Future | None = None
    cancelled: bool = False


class Delegator:
    """Implements ``engine.session.DelegationHook``."""

    def __init__(self, brain: Brain, bus: EventBus, now: Callable[[], float],
                 options: DelegationOptions | None = None, context: Callable[[], str] | None = None):
        self.brain = brain
        self.bus = bus
        self.now = now
        self.options = options or DelegationOptions()
        self.context = context or (lambda: "")
        self._ring: deque[Frame] = deque(maxlen=self.options.ring_frames)
        self._last_ring_t = -1e9
        self._pool = cf.ThreadPoolExecutor(max_workers=self.options.max_concurrent, thread_name_prefix="brain")
        self._tasks: dict[str, Task] = {}
        self._notes: deque[str] = deque()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    # --- DelegationHook -----------------------------------------------------------------------
    def observe_frame(self, frame: Frame) -> None:
        if frame.t - self._last_ring_t >= 1.0 / self.options.ring_fps - 1e-9:
            self._ring.append(frame)  # raw pixels; JPEG encoding happens only when a task snapshots
            self._last_ring_t = frame.t

    def on_tick(self, tick) -> None:
        """A session tick listener (``engine.session.Tick``)."""
        if tick.decision is not None:
            self.on_decision(tick.decision, tick.t, tick.standing_query)

    def on_decision(self, decision: Decision, t: float, standing_query: str) -> None:
        if decision.action != "delegate":
            return
        # an empty question falls back to the user's standing question (seed_systems §1.5)
        question = (decision.delegate_query or "").strip() or standing_query.strip()
        if not question:
            self.bus.publish(t, DelegateError(task_id="", query="", message="delegation without a question"))
            return
        task = Task(f"bg-{next(self._seq)}-{uuid.uuid4().hex[:8]}", t, question)
        with self._lock:
            running = sum(1 for x in self._tasks.values() if x.future and not x.future.done())
            if running >= self.options.max_pending:
                self.bus.publish(t, DelegateError(task_id=task.id, query=task.question,
                                                  message=f"too many background tasks ({running}); question dropped"))
                return
            self._tasks[task.id] = task
        frames = list(self._ring)[-self.options.frames_to_brain:] if getattr(self.brain, "takes_images", False) else []
        context = self.context()
        if standing_query.strip():
            context = f"The user's standing question: {standing_query.strip()}\n{context}"
        self.bus.publish(t, DelegateStarted(task_id=task.id, query=task.question, note=decision.text,
                                            frames=len(frames), brain=getattr(self.brain, "name", "brain")))
        task.future = self._pool.submit(self._run, task, context, frames)

    def take_notes(self) -> list[str]:
        with self._lock:
            notes = list(self._notes)
            self._notes.clear()
        return notes

    def close(self) -> None:
        """Session over: pending tasks are abandoned, each reported once, so the log says so."""
        for task in list(self._tasks.values()):
            if task.future is not None and not task.future.done() and not task.cancelled:
                self.bus.publish(self.now(), DelegateError(task_id=task.id, query=task.question,
                                                           message="session ended before the brain answered"))
            task.cancelled = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- UI -------------------------------------------------------------------------------------
    def cancel(self, task_id: str) -> bool:
        """Cancel a task: its result, if it still arrives, is discarded."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or task.cancelled or (task.future and task.future.done()):
            return False
        task.cancelled = True
        if task.future is not None:
            task.future.cancel()
        self.bus.publish(self.now(), DelegateError(task_id=task_id, query=task.question, message="cancelled"))
        return True

    def pending(self) -> list[str]:
        with self._lock:
            return [k for k, x in self._tasks.items() if x.future and not x.future.done() and not x.cancelled]

    # --- worker ---------------------------------------------------------------------------------
    def _run(self, task: Task, context: str, frames: list[Frame]) -> None:
        o = self.options
        t0 = time.perf_counter()
        jpegs = [encode_jpeg(f.pixels, o.long_edge, o.jpeg_quality) for f in frames] or None
        result: dict = {}

        def call() -> None:
            try:
                answer = getattr(self.brain, "answer", None)
                if callable(answer):  # a brain that reports how hard it thought (DAMI: λ and tokens)
                    a = answer(task.question, context, o.timeout_s)
                    result.update(answer=a.text, lam=a.lam, tokens=a.tokens)
                else:
                    result["answer"] = self.brain.ask(task.question, context, jpegs, o.timeout_s)
            except Exception as exc:  # noqa: BLE001 - any brain failure becomes one event line
                result["error"] = exc

        # The brain runs in its own daemon thread so a brain that ignores its timeout still frees us.
        th = threading.Thread(target=call, name=f"brain-{task.id}", daemon=True)
        th.start()
        th.join(o.timeout_s)
        latency_ms = round((time.perf_counter() - t0) * 1000, 1)
        if task.cancelled:
            return
        if th.is_alive():
            self.bus.publish(self.now(), DelegateError(task_id=task.id, query=task.question,
                                                       message=f"brain timed out after {o.timeout_s:g} s", latency_ms=latency_ms))
            return
        if "error" in result:
            exc = result["error"]
            msg = str(exc) if isinstance(exc, BrainError) else f"{type(exc).__name__}: {exc}"
            self.bus.publish(self.now(), DelegateError(task_id=task.id, query=task.question,
                                                       message=msg.splitlines()[0] if msg else "brain failed", latency_ms=latency_ms))
            return
        answer = result.get("answer") or ""
        text = digest(answer)
        if not text:
            self.bus.publish(self.now(), DelegateError(task_id=task.id, query=task.question,
                                                       message="brain returned an empty answer", latency_ms=latency_ms))
            return
        note = (f"[Background result for the question asked at {task.t:.0f}s: "
                f"{quote_untrusted(task.question)}]\n{quote_untrusted(text)}")
        with self._lock:
            self._notes.append(note)
        self.bus.publish(self.now(), DelegateResult(task_id=task.id, query=task.question, text=text,
                                                    lam=result.get("lam"), answer_tokens=result.get("tokens"),
                                                    result=text, latency_ms=latency_ms))


NO_BRAIN = "no brain configured — Settings → Brain"


class NoBrain:
    """The delegation hook when no brain is configured. The prompt does not offer delegation then, but
    a model may delegate anyway (a native JoyAI model does so on its own): its question is shown as a
    ``delegate_error`` that says why it was not answered, never silently dropped."""

    def __init__(self, bus: EventBus, reason: str = NO_BRAIN):
        self.bus = bus
        self.reason = reason

    def observe_frame(self, frame: Frame) -> None:
        pass

    def on_tick(self, tick) -> None:
        if tick.decision is not None:
            self.on_decision(tick.decision, tick.t, tick.standing_query)

    def on_decision(self, decision: Decision, t: float, standing_query: str) -> None:
        if decision.action != "delegate":
            return
        question = (decision.delegate_query or "").strip() or standing_query.strip()
        self.bus.publish(t, DelegateError(task_id="", query=question, message=self.reason))

    def take_notes(self) -> list[str]:
        return []

    def close(self) -> None:
        pass
