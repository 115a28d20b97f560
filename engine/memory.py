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
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


def estimate_tokens(text: str) -> int:
    """Cheap token estimate (≈4 characters per token), as the reference does without a tokenizer."""
    return (len(text) + 3) // 4


@dataclass
class MemoryOptions:
    chunk_ticks: int = 200  # T_s
    mid_max: int = 5  # M
    long_every: int = 5  # merge every M mid summaries into one long block
    long_max_blocks: int = 42  # L
    long_max_tokens: int = 4000
    lead_ticks: int = 20  # submit the summary job this many ticks before the boundary
    boundary_wait_s: float = 5.0
    frames_per_summary: int = 8  # frames sampled from a chunk for summarizers that take images


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
    """Owns the tiers and schedules summaries. The session calls ``on_tick`` once per tick."""

    def __init__(self, options: MemoryOptions | None = None, summarizer: Summarizer | None = None,
                 on_summary=None):
        self.options = options or MemoryOptions()
        self.summarizer = summarizer or ConcatSummarizer()
        self.on_summary = on_summary  # callback(kind, text, start_t, end_t, latency_s)
        self.mid: list[tuple[int, int, str]] = []  # (start_t, end_t, text)
        self.long: list[str] = []
        self._since_merge: list[str] = []
        self.chunk_index = 0
        self.chunk_start = 0
        self.turns: list[TurnRecord] = []
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarizer")
        self._job: cf.Future | None = None
        self._job_turns = 0
        self._lock = threading.Lock()
        self.late_summaries = 0

    # --- tick-side API -------------------------------------------------------------------------
    def record(self, turn: TurnRecord) -> None:
        self.turns.append(turn)

    def ticks_in_chunk(self, t: int) -> int:
        return t - self.chunk_start + 1

    def maybe_submit(self, t: int) -> None:
        """Submit the chunk's summary job ``lead_ticks`` before the boundary (never blocks)."""
        o = self.options
        if self._job is None and self.ticks_in_chunk(t) >= o.chunk_ticks - o.lead_ticks and self.turns:
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
        self._job = self._pool.submit(self._run_summary, record)

    def _run_summary(self, record: ChunkRecord) -> tuple[ChunkRecord, str, float]:
        import time

        t0 = time.perf_counter()
        try:
            text = self.summarizer.summarize(record)
        except Exception as exc:  # noqa: BLE001 - a failing summarizer degrades to plain text
            text = ConcatSummarizer().summarize(record) + f" (summarizer failed: {exc})"
        return record, text.strip(), time.perf_counter() - t0

    def boundary(self, t: int) -> None:
        """Close the chunk at tick ``t``: wait (bounded) for its summary, commit what is ready,
        and start the next chunk with the carry-over turns."""
        if self._job is None:
            self._submit()
        job = self._job
        try:
            record, text, latency = job.result(timeout=self.options.boundary_wait_s)
            self._commit(record, text, latency)
            self._job = None
        except cf.TimeoutError:
            self.late_summaries += 1  # keeps running; committed by poll() when it lands
        carried = self.turns[self._job_turns:]
        self.turns = carried
        self._job_turns = 0
        self.chunk_index += 1
        self.chunk_start = t + 1

    def poll(self) -> None:
        """Commit a late summary once it is ready (called every tick; never blocks)."""
        if self._job is not None and self._job.done() and self.turns is not None:
            job, self._job = self._job, None
            record, text, latency = job.result()
            if record.index < self.chunk_index:
                self._commit(record, text, latency)
            else:  # submitted for the current chunk ahead of its boundary: keep it for boundary()
                self._job = job

    # --- tiers ---------------------------------------------------------------------------------
    def _commit(self, record: ChunkRecord, text: str, latency: float) -> None:
        o = self.options
        with self._lock:
            self.mid.append((record.start_t, record.end_t, text))
            self._since_merge.append(text)
            if len(self._since_merge) >= o.long_every:
                self.long.append(self.summarizer.merge(self._since_merge))
                self._since_merge = []
            self.mid = self.mid[-o.mid_max:]
            self._enforce_long_budget()
        if self.on_summary:
            self.on_summary("mid", text, record.start_t, record.end_t, latency)

    def _enforce_long_budget(self) -> None:
        o = self.options
        while len(self.long) > 1 and (
            len(self.long) > o.long_max_blocks or sum(estimate_tokens(b) for b in self.long) > o.long_max_tokens
        ):
            # Merge the two oldest blocks into a coarser gist: the first hours stay, only coarser.
            self.long[:2] = [self.summarizer.merge(self.long[:2], coarser=True)]

    def prefix_text(self) -> str:
        """The memory part of the next chunk's prefix: long blocks, then mid summaries, then the
        carry-over turns as text."""
        with self._lock:
            parts = [f"[Long-term] {b}" for b in self.long]
            parts += [f"<{s}s ~ {e}s>\n{text}" for s, e, text in self.mid]
        carry = [f"<{tr.t}s> {tr.decision}" for tr in self.turns if tr.decision != "</silence>"]
        if carry:
            parts.append("[Recent]\n" + "\n".join(carry[-20:]))
        return "\n".join(parts)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
