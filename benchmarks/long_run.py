"""A one-hour clip through ``--fast`` on the virtual clock: speed against real time, and peak RSS
at minute 5 against minute 60 (the session must not grow with the stream).

    python benchmarks/long_run.py [--minutes 60] [--backend heuristic]

Runs the real ``presence run`` code path in-process (wiring, JSONL log, SQLite store, OCR).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

from engine.events import EventType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings  # noqa: E402
from app.wiring import build_session  # noqa: E402
from benchmarks._clips import slides_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--backend", default="heuristic")
    a = ap.parse_args()
    t_gen = time.perf_counter()
    clip = slides_clip(a.minutes, seconds_per_slide=60.0, fps=2.0)
    print(f"clip {clip.name} ready in {time.perf_counter() - t_gen:.1f}s ({clip.stat().st_size / 1e6:.1f} MB)")
    proc = psutil.Process()
    rss_at: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as d:
        s = Settings()
        s.backend.name = a.backend
        s.capture.source = str(clip)
        built = build_session(s, fast=True, log=str(Path(d) / "o.jsonl"), store=str(Path(d) / "s.db"), voice=False)

        def sample(e: dict) -> None:
            if e["type"] == EventType.DECISION and int(e["t"]) % 60 == 59:
                rss_at[int(e["t"]) // 60 + 1] = proc.memory_info().rss / 2**20

        built.bus.subscribe(sample)
        t0 = time.perf_counter()
        result = built.session.run()
        wall = time.perf_counter() - t0
        built.close()
    stream_s = result.ticks
    print(f"ticks {result.ticks}, responses {result.responses}, skipped {result.skipped}")
    print(f"wall {wall:.1f} s for {stream_s} s of video: {stream_s / wall:.1f}x real time (goal >= 20x)")
    m5 = rss_at.get(5)
    last = max(rss_at) if rss_at else None
    if m5 and last:
        growth = rss_at[last] / m5 - 1
        print(f"RSS minute 5: {m5:.1f} MiB, minute {last}: {rss_at[last]:.1f} MiB ({growth:+.1%}; goal within 10%)")
        print("RSS by minute: " + ", ".join(f"{k}:{v:.0f}" for k, v in sorted(rss_at.items()) if k % 10 == 0 or k == 5))


if __name__ == "__main__":
    main()
