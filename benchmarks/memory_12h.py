"""A 12-hour stream on the virtual clock through the real session loop and memory tiers, with a real
small summarizer (SmolLM2-135M via llama.cpp) on a sampled subset of chunks and the fast text
fallback elsewhere. Prints prefix tokens over time, summary latency (real vs fallback) and peak RSS.

    python benchmarks/memory_12h.py [--hours 12] [--real-every 24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from engine.events import EventType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.backends.base import Backend, BackendStats  # noqa: E402
from engine.clock import VirtualClock  # noqa: E402
from engine.events import EventBus  # noqa: E402
from engine.frames import Frame  # noqa: E402
from engine.memory import ConcatSummarizer, Memory, MemoryOptions, estimate_tokens  # noqa: E402
from engine.session import Session, SessionOptions  # noqa: E402
from engine.source import FrameSource  # noqa: E402
from engine.summarizer import ChatSummarizer  # noqa: E402


class Stream(FrameSource):
    live = False

    def __init__(self, seconds: int):
        self.seconds = seconds
        self._px = np.full((36, 64, 3), 90, np.uint8)

    def open(self) -> None:
        pass

    def frames(self):
        for t in range(self.seconds):
            yield Frame(self._px, float(t))


class Narrator(Backend):
    """A fast stand-in for the interaction model: speaks every 15 s with changing numbers."""

    name = "narrator"
    wants_frames = True

    def __init__(self):
        self.prefix_tokens: list[tuple[int, int]] = []
        self.full_history_tokens = 0  # baseline: every response kept verbatim (no memory tiers)
        self.baseline: list[int] = []
        self._t = 0

    def load(self, config):
        pass

    def start_chunk(self, prefix):
        self.prefix_tokens.append((self._t, estimate_tokens(prefix.system + prefix.text)))
        self.baseline.append(estimate_tokens(prefix.system) + self.full_history_tokens)

    def observe(self, turn):
        self._t = turn.t

    def decide(self, max_tokens=128):
        t = self._t
        yield f"</response> Counter at {t // 15}, queue length {(t * 7) % 23}." if t % 15 == 0 else "</silence>"

    def commit(self, text):
        if text != "</silence>":
            self.full_history_tokens += estimate_tokens(f"<{self._t}s> {text}\n")

    def stats(self):
        return BackendStats()


class Sampled:
    """Real summarizer on every Nth chunk (and every Nth merge), the text fallback elsewhere."""

    takes_images = False

    def __init__(self, real: ChatSummarizer, every: int):
        self.real, self.fake, self.every = real, ConcatSummarizer(), every
        self.n = self.m = 0
        self.real_s: list[float] = []
        self.fake_s: list[float] = []

    def _timed(self, fn, bucket, *a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        bucket.append(time.perf_counter() - t0)
        return out

    def summarize(self, chunk):
        self.n += 1
        if self.n % self.every == 1:
            return self._timed(self.real.summarize, self.real_s, chunk)
        return self._timed(self.fake.summarize, self.fake_s, chunk)

    def merge(self, texts, coarser=False):
        self.m += 1
        if self.m % self.every == 1:
            return self._timed(self.real.merge, self.real_s, texts, coarser)
        return self._timed(self.fake.merge, self.fake_s, texts, coarser)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=12)
    ap.add_argument("--real-every", type=int, default=24, help="use SmolLM2 on every Nth chunk")
    a = ap.parse_args()
    from plugins.brain.local_llm import LocalLLMBrain  # plugins: benchmarks may use them

    real = ChatSummarizer(LocalLLMBrain(n_ctx=4096).chat, mid_tokens=160, merge_tokens=120)
    summarizer = Sampled(real, a.real_every)
    seconds = int(a.hours * 3600)
    opts = SessionOptions(keep_summary_frames=False, memory=MemoryOptions(boundary_wait_s=60))
    backend = Narrator()
    bus = EventBus("12h")
    memory = Memory(opts.memory, summarizer)
    session = Session(backend, Stream(seconds), bus=bus, clock=VirtualClock(), options=opts, memory=memory)
    proc = psutil.Process()
    peak = [0.0]
    bus.subscribe(lambda e: peak.__setitem__(0, max(peak[0], proc.memory_info().rss / 2**20))
                  if e["type"] == EventType.SUMMARY else None)
    t0 = time.perf_counter()
    result = session.run()
    wall = time.perf_counter() - t0
    print(f"{a.hours:g} h stream: {result.ticks} ticks in {wall:.1f} s wall ({result.ticks / wall:.0f}x real time), "
          f"{len(backend.prefix_tokens) - 1} chunk boundaries, late summaries {memory.late_summaries}")
    print(f"{'hour':>5} {'prefix tokens':>14} {'full history':>13} {'ratio':>6}")
    per_hour: dict[int, tuple[int, int]] = {}
    for (t, n), b in zip(backend.prefix_tokens, backend.baseline, strict=True):
        old = per_hour.get(t // 3600, (0, 0))
        per_hour[t // 3600] = (max(old[0], n), max(old[1], b))
    for h, (n, b) in sorted(per_hour.items()):
        print(f"{h:>5} {n:>14} {b:>13} {n / max(b, 1):>6.2f}")
    r, f = summarizer.real_s, summarizer.fake_s
    if r:
        print(f"summary latency, SmolLM2 ({len(r)} calls): p50 {statistics.median(r) * 1000:.0f} ms, "
              f"max {max(r) * 1000:.0f} ms")
    if f:
        print(f"summary latency, text fallback ({len(f)} calls): p50 {statistics.median(f) * 1000:.2f} ms")
    waits = memory.boundary_wait_s
    if waits:
        print(f"boundary wait: p50 {statistics.median(waits) * 1000:.1f} ms, max {max(waits) * 1000:.0f} ms; "
              f"degraded summaries {memory.degraded_summaries}")
    print(f"peak RSS {peak[0]:.0f} MiB; long blocks {len(memory.long)}, "
          f"long tokens {sum(estimate_tokens(b) for b in memory.long)} (budget {opts.memory.long_max_tokens})")


if __name__ == "__main__":
    main()
