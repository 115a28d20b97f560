"""Three-tier memory with hard budgets (DESIGN §5, seed_systems §1.4).

    short  the raw turns of the current chunk (chunk_ticks ticks, default 200)
    mid    one factual paragraph per chunk, written by a summarizer (at most mid_max kept)
    long   every long_every mid summaries merged into one block; over budget (count or tokens) the
           oldest blocks are merged *again* into a coarser gist — never simply dropped — so the
           first hours survive as a summary

    tick: ... 180 ─── submit summary job (lead_ticks early) ─── 200 boundary: commit, new prefix
                      │ runs in a worker thread; never blocks a tick
                      ▼
                  Summarizer.summarize(ChunkRecord) -> str

At the boundary the session waits for the summary at most ``boundary_wait_s``; a late summary is
committed when it arrives and enters the next prefix after that.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.options import setting


def estimate_tokens(text: str) -> int:
    """Cheap token estimate (≈4 characters per token), as the reference does without a tokenizer."""
    return (len(text) + 3) // 4


@dataclass
class MemoryOptions:
    chunk_ticks: int = setting(200, "seconds per context chunk (T_s); the context resets at each boundary", ge=2)
    mid_max: int = setting(5, "mid-term summaries kept in the prefix (M)", ge=1)
    long_every: int = setting(5, "merge every this many mid summaries into one long-term block", ge=1)
    long_max_blocks: int = setting(42, "long-term blocks kept (L)", ge=1)
    long_max_tokens: int = setting(4000, "token budget of the long-term memory", ge=100)
    lead_ticks: int = setting(20, "submit the summary job this many ticks before the boundary", ge=0)
    boundary_wait_s: float = setting(5.0, "seconds a boundary waits for its summary", ge=0.0, le=600.0)
    frames_per_summary: int = setting(8, "frames sampled from a chunk for summarizers that take images", ge=0)


@dataclass
class TurnRecord:
    t: int
    decision: str  # canonical decision text
    query: str = ""
    notes: list[str] = field(default_factory=list)
    thumb: np.ndarray | None = None  # small RGB frame kept for the summarizer (sampled)


@dataclass
class ChunkRecord:
    index: int
    start_t: int
    end_t: int
    turns: list[TurnRecord]
    frames: list[tuple[int, np.ndarray]]  # sampled (t, RGB) frames
    previous_summary: str = ""


class Summarizer(Protocol):
    takes_images: bool

    def summarize(self, chunk: ChunkRecord) -> str: ...

    def merge(self, texts: list[str], coarser: bool = False) -> str: ...


class ConcatSummarizer:
    """No model: keeps the responses of a chunk as text. Used when no summarizer is configured,
    and as the fake in tests (deterministic, instant)."""

    takes_images = False

    def summarize(self, chunk: ChunkRecord) -> str:
        said = [f"{t.t}s: {t.decision.removeprefix('</response>').strip()}" for t in chunk.turns
                if t.decision.startswith("</response>")]
        if not said:
            return f"No visually significant change noted in seconds {chunk.start_t}–{chunk.end_t}."
        return f"Seconds {chunk.start_t}–{chunk.end_t}: " + "; ".join(said[:12])

    def merge(self, texts: list[str], coarser: bool = False) -> str:
        joined = " | ".join(texts)
        limit = 600 if coarser else 1600
        return joined if len(joined) <= limit else joined[: limit - 1] + "…"


class Memory:
    """Owns the tiers and schedules summaries. Tick-side calls (record, maybe_submit, is_boundary,
    boundary, poll, prefix_text) never run a model: summaries (one worker, in chunk order) and
    long-tier merges (a second worker) run off the tick; ``poll``/``boundary`` commit them.

    Tiers never overlap: ``mid`` holds at most ``mid_max`` chunk summaries; when one more arrives,
    the oldest ``long_every`` leave ``mid`` and are merged into one long block (horizon
    T_s·(1 + M + L·M))."""

    def __init__(self, options: MemoryOptions | None = None, summarizer: Summarizer | None = None,
                 on_summary=None):
        self.options = options or MemoryOptions()
        self.summarizer = summarizer or ConcatSummarizer()
        self.on_summary = on_summary  # callback(kind, text, start_t, end_t, latency_s)
        self.mid: list[tuple[int, int, str]] = []  # (start_t, end_t, text)
        self.long: list[str] = []
        self.long_spans: list[tuple[int, int]] = []  # (start_t, end_t) of each long block
        self.chunk_index = 0
        self.chunk_start = 0
        self.turns: list[TurnRecord] = []
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarizer")
        self._jobs: deque[cf.Future] = deque()  # summary jobs, oldest first (one worker: in order)
        self._submitted_index = -1  # chunk index whose summary job is submitted
        self._job_turns = 0  # turns of the current chunk covered by its submitted job
        # merges get their own worker so a slow merge never delays the next chunk's summary
        self._merge_pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary-merge")
        self._merge_batches: deque[list[tuple[int, int, str]]] = deque()
        self._merge_job: cf.Future | None = None
        self._lock = threading.Lock()
        self.late_summaries = 0
        self.degraded_summaries = 0
        self.boundary_wait_s: list[float] = []  # how long each boundary actually waited

    # --- tick-side API -------------------------------------------------------------------------
    def record(self, turn: TurnRecord) -> None:
        self.turns.append(turn)

    def ticks_in_chunk(self, t: int) -> int:
        return t - self.chunk_start + 1

    def on_tick(self, tick) -> None:
        """A session tick listener (``engine.session.Tick``): a decided second joins the short tier,
        and the chunk's summary job starts ``lead_ticks`` before the boundary."""
        if tick.decision is None:
            return
        self.record(TurnRecord(tick.t, tick.decision.canonical(), query=tick.query, notes=tick.notes,
                               thumb=tick.thumb))
        self.maybe_submit(tick.t)

    def maybe_submit(self, t: int) -> None:
        """Submit the chunk's summary job ``lead_ticks`` before the boundary (never blocks)."""
        o = self.options
        if (self._submitted_index < self.chunk_index and self.turns
                and self.ticks_in_chunk(t) >= o.chunk_ticks - o.lead_ticks):
            self._submit()

    def is_boundary(self, t: int) -> bool:
        return self.ticks_in_chunk(t) >= self.options.chunk_ticks

    def _submit(self) -> None:
        turns = list(self.turns)
        step = max(1, len(turns) // max(1, self.options.frames_per_summary))
        frames = [(tr.t, tr.thumb) for tr in turns[::step] if tr.thumb is not None]
        record = ChunkRecord(self.chunk_index, turns[0].t, turns[-1].t, turns, frames,
                             previous_summary=self.mid[-1][2] if self.mid else "")
        self._job_turns = len(turns)
        self._submitted_index = self.chunk_index
        if len(self._jobs) >= 3:
            # The summarizer is more than two chunks behind: this chunk gets the instant text
            # summary instead of queueing forever (memory stays bounded, every chunk commits).
            self.degraded_summaries += 1
            fut: cf.Future = cf.Future()
            fut.set_result((record, ConcatSummarizer().summarize(record) + " (summarizer busy)", 0.0))
            self._jobs.append(fut)
            return
        self._jobs.append(self._pool.submit(self._run_summary, record))

    def _run_summary(self, record: ChunkRecord) -> tuple[ChunkRecord, str, float]:
        t0 = time.perf_counter()
        try:
            text = self.summarizer.summarize(record).strip()
        except Exception as exc:  # noqa: BLE001 - a failing summarizer degrades to plain text
            text = ConcatSummarizer().summarize(record) + f" (summarizer failed: {exc})"
        return record, text or ConcatSummarizer().summarize(record), time.perf_counter() - t0

    def boundary(self, t: int) -> None:
        """Close the chunk at tick ``t``: wait (bounded) for its summary, commit what is ready,
        and start the next chunk with the carry-over turns."""
        if self._submitted_index < self.chunk_index:
            if self.turns:
                self._submit()
            else:
                self._job_turns = 0
        t0 = time.perf_counter()
        if self._jobs and self._submitted_index == self.chunk_index:
            # one worker runs jobs in order: the last job done means all earlier ones are done
            cf.wait([self._jobs[-1]], timeout=self.options.boundary_wait_s)
            if not self._jobs[-1].done():
                self.late_summaries += 1  # keeps running; committed by poll() when it lands
        self.boundary_wait_s.append(time.perf_counter() - t0)
        self.turns = self.turns[self._job_turns:]
        self._job_turns = 0
        self.chunk_index += 1
        self.chunk_start = t + 1
        self.poll()

    def poll(self) -> None:
        """Commit finished summaries (of closed chunks) and long-tier merges. Never blocks."""
        while self._jobs and self._jobs[0].done():
            record, text, latency = self._jobs[0].result()
            if record.index >= self.chunk_index:
                break  # submitted ahead of its boundary: committed when the chunk closes
            self._jobs.popleft()
            self._commit(record, text, latency)
        if self._merge_job is not None and self._merge_job.done():
            long, spans, block, span, latency = self._merge_job.result()
            self._merge_job = None
            with self._lock:
                self.long, self.long_spans = long, spans
            if self.on_summary:
                self.on_summary("long", block, span[0], span[1], latency)
        if self._merge_job is None and self._merge_batches:
            batch = self._merge_batches.popleft()
            self._merge_job = self._merge_pool.submit(self._run_merge, batch, list(self.long), list(self.long_spans))

    # --- tiers ---------------------------------------------------------------------------------
    def _commit(self, record: ChunkRecord, text: str, latency: float) -> None:
        o = self.options
        with self._lock:
            self.mid.append((record.start_t, record.end_t, text))
            if len(self.mid) > o.mid_max:
                n = max(len(self.mid) - o.mid_max, min(o.long_every, len(self.mid)))
                batch, self.mid = self.mid[:n], self.mid[n:]
                self._merge_batches.append(batch)
        if self.on_summary:
            self.on_summary("mid", text, record.start_t, record.end_t, latency)

    def _run_merge(self, batch, long: list[str], spans: list[tuple[int, int]]):
        """Worker: merge a batch of mid summaries into a long block, then hold the budget."""
        t0 = time.perf_counter()
        texts = [x[2] for x in batch]
        try:
            block = self.summarizer.merge(texts).strip()
        except Exception as exc:  # noqa: BLE001
            block = ConcatSummarizer().merge(texts) + f" (merge failed: {exc})"
        span = (batch[0][0], batch[-1][1])
        long, spans = long + [block], spans + [span]
        long, spans = self._within_budget(long, spans)
        return long, spans, block, span, time.perf_counter() - t0

    def _within_budget(self, long: list[str], spans: list[tuple[int, int]]):
        o = self.options
        while len(long) > 1 and (len(long) > o.long_max_blocks
                                 or sum(estimate_tokens(b) for b in long) > o.long_max_tokens):
            # Merge the two oldest blocks into a coarser gist: the first hours stay, only coarser.
            try:
                gist = self.summarizer.merge(long[:2], coarser=True).strip()
            except Exception:  # noqa: BLE001
                gist = ConcatSummarizer().merge(long[:2], coarser=True)
            if estimate_tokens(gist) >= sum(estimate_tokens(b) for b in long[:2]):
                gist = ConcatSummarizer().merge([gist], coarser=True)  # a merge must shrink
            long[:2] = [gist]
            spans[:2] = [(spans[0][0], spans[1][1])]
        if len(long) == 1 and estimate_tokens(long[0]) > o.long_max_tokens:
            long[0] = long[0][: o.long_max_tokens * 4 - 1] + "…"
        return long, spans

    def _enforce_long_budget(self) -> None:
        spans = self.long_spans if len(self.long_spans) == len(self.long) else [(0, 0)] * len(self.long)
        self.long, self.long_spans = self._within_budget(list(self.long), list(spans))

    def prefix_text(self) -> str:
        """The memory part of the next chunk's prefix: long blocks, then mid summaries, then the
        carry-over turns as text."""
        with self._lock:
            spans = self.long_spans if len(self.long_spans) == len(self.long) else [None] * len(self.long)
            parts = [f"[Long-term {sp[0]}s ~ {sp[1]}s] {b}" if sp else f"[Long-term] {b}"
                     for b, sp in zip(self.long, spans, strict=True)]
            parts += [f"<{s}s ~ {e}s>\n{text}" for s, e, text in self.mid]
        carry = [f"<{tr.t}s> {tr.decision}" for tr in self.turns if tr.decision != "</silence>"]
        if carry:
            parts.append("[Recent]\n" + "\n".join(carry[-20:]))
        return "\n".join(parts)

    def context_text(self, recent: int = 30) -> str:
        """What a background brain gets as stream context: the memory prefix plus the current
        chunk's recent non-silent turns (safe to call from any thread)."""
        turns = [tr for tr in list(self.turns) if tr.decision != "</silence>" or tr.query]
        lines = [f"<{tr.t}s> {tr.decision}" + (f" (user: {tr.query})" if tr.query else "") for tr in turns[-recent:]]
        return self.prefix_text() + ("\n[Current]\n" + "\n".join(lines) if lines else "")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._merge_pool.shutdown(wait=False, cancel_futures=True)
