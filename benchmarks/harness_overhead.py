"""The harness's own per-tick cost (decode, resize, bookkeeping, logging) with the heuristic backend,
against a bare decode-only loop over the same clip in the same run.

    python benchmarks/harness_overhead.py [--minutes 5] [--ocr]

Prints p50/p95 ms per tick for both, and the harness overhead (difference). Goal: < 5 ms per tick.
OCR is off by default because it is the backend's cost, not the harness's (``--ocr`` to include it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._clips import slides_clip  # noqa: E402
from engine.backends.heuristic import HeuristicBackend, HeuristicOptions  # noqa: E402
from engine.clock import VirtualClock  # noqa: E402
from engine.events import EventBus, EventType  # noqa: E402
from engine.log import JsonlLog, SqliteStore  # noqa: E402
from engine.session import Session, SessionOptions  # noqa: E402
from plugins.capture.video_file import VideoFileSource  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bare_decode(clip: Path) -> list[float]:
    """ms per second of video for decoding alone (the floor any harness pays)."""
    src = VideoFileSource(clip)
    src.open()
    per_tick, tick, t0 = [], 0, time.perf_counter()
    for frame in src.frames():
        while frame.t >= tick + 1:
            now = time.perf_counter()
            per_tick.append((now - t0) * 1000)
            t0, tick = now, tick + 1
    per_tick.append((time.perf_counter() - t0) * 1000)
    src.close()
    return per_tick


def harness(clip: Path, ocr: bool) -> list[float]:
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        bus = EventBus("bench")
        log, store = JsonlLog(Path(d) / "o.jsonl"), SqliteStore(Path(d) / "s.db")
        bus.subscribe(log)
        bus.subscribe(store)
        bus.subscribe(lambda e: stamps.append(time.perf_counter()) if e["type"] in (EventType.DECISION, EventType.SKIPPED) else None)
        session = Session(HeuristicBackend(HeuristicOptions(ocr=ocr)), VideoFileSource(clip), bus=bus,
                          clock=VirtualClock(), options=SessionOptions())
        t0 = time.perf_counter()
        session.run()
        log.close()
        store.close()
    ticks = [t0, *stamps]
    return [(b - a) * 1000 for a, b in zip(ticks, ticks[1:], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--ocr", action="store_true")
    a = ap.parse_args()
    clip = slides_clip(a.minutes, seconds_per_slide=10.0, fps=5.0)
    bare_decode(clip)  # warm the page cache and codec
    base = bare_decode(clip)
    full = harness(clip, a.ocr)
    b50, b95 = statistics.median(base), pct(base, 0.95)
    h50, h95 = statistics.median(full), pct(full, 0.95)
    print(f"clip: {clip.name}  ({len(full)} ticks, 640x360 @ 5 fps, slide change every 10 s)")
    print(f"{'loop':<28}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'bare decode only':<28}{b50:>10.2f}{b95:>10.2f}")
    print(f"{'harness (heuristic backend)':<28}{h50:>10.2f}{h95:>10.2f}")
    print(f"harness overhead per tick: p50 {h50 - b50:.2f} ms, p95 {h95 - b95:.2f} ms "
          f"(ratio {h50 / b50:.2f}x of decode); goal < 5 ms: {'MET' if h50 - b50 < 5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
