"""Soak: hours of stream on the virtual clock through the real session, with faults injected on a
schedule, and nothing lost. The real ``lite`` backend (OCR + SmolLM2) watches a looping real clip;
the JSONL log and the SQLite store are written in ``[storage] on_write_error = "wait"`` mode; memory
tiers and delegation to a local brain (SmolLM2 through llama.cpp, or the echo brain) run as in the app.

    python benchmarks/soak.py [--hours 12] [--clip FILE] [--brain llamacpp|echo] [--fault-every 240]

Every ``--fault-every`` stream seconds one fault starts, in turn:
    disk full      the log's ``os.write`` fails with ENOSPC and the store's row insert with SQLite's
                   "database or disk is full" for 120 s, then space returns (injected in ``engine.log``)
    brain down     the brain raises BrainError for 120 s, then answers again
    source lost    the clip delivers no frames for 60 s, then plays on
What it checks (exit 1 when any fails): every second 0 … N-1 has exactly one record on the bus, in the
log and in the store, with the same content; the seconds without frames are exactly the lost ones;
every delegation ends in one result or one error, errors only while the brain was down; no event is
left unwritten; RSS and open file handles in the last hour match the first hour (after a warm-up).

The clip (``--clip``) defaults to ``real_slides.mp4`` in the folder named by ``$PRESENCE_REAL_CLIPS``
when that is set, else the bundled demo clip. The lite backend never delegates by itself (it has no
judgement for hard questions), so a thin wrapper turns one tick every ``--delegate-every`` seconds into
a delegation (none in the last 300 s); every other tick is lite's own decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import engine.log as sink_files  # noqa: E402
from app.config import Settings  # noqa: E402
from app.wiring import DEMO_CLIP, build_backend, build_session  # noqa: E402
from engine.brain import BrainError  # noqa: E402
from engine.events import EventType  # noqa: E402
from engine.log import SqliteStore  # noqa: E402
from engine.source import FrameSource  # noqa: E402
from plugins.capture.video_file import VideoFileSource  # noqa: E402

RECORDS = (EventType.DECISION, EventType.SKIPPED)
FAULTS = (("disk full", 120), ("brain down", 120), ("source lost", 60))
LAST_QUIET_S = 300  # no delegation this close to the end: the brain answers in wall time, not stream time


class Schedule:
    """Which fault holds at stream second ``t``: one every ``every`` s (starting 60 s into each period)."""

    def __init__(self, every: int):
        self.every = every

    def fault_at(self, t: float) -> str:
        k, into = divmod(int(t), self.every)
        name, length = FAULTS[k % len(FAULTS)]
        return name if 60 <= into < 60 + length else ""


class LoopingClip(FrameSource):
    """A real clip played again and again (stream time runs on), silent while the schedule says the
    source is lost."""

    live = False

    def __init__(self, path: Path, schedule: Schedule):
        self.path, self.schedule, self.label = path, schedule, str(path)

    def open(self) -> None:
        probe = VideoFileSource(self.path)
        probe.open()  # a bad clip fails here, as a source would
        probe.close()  # frames() opens its own copy for each loop

    def frames(self):
        offset = 0.0
        while True:
            clip = VideoFileSource(self.path, sample_fps=1.0)
            clip.open()
            last = 0.0
            for f in clip.frames():
                f = dataclasses.replace(f, t=f.t + offset)
                last = f.t
                if self.schedule.fault_at(f.t) != "source lost":
                    yield f
            clip.close()
            offset = last + 1.0 / clip.fps


class DelegatesEvery:
    """The lite backend, but the tick at every ``every`` s delegates a question (lite never does)."""

    def __init__(self, inner, every: int, until: int):
        self.inner, self.every, self.until, self._t = inner, every, until, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def observe(self, turn) -> None:
        self._t = turn.t
        self.inner.observe(turn)

    def decide(self, max_tokens: int = 128):
        if self._t and self._t % self.every == 0 and self._t < self.until:
            yield f"</response> Let me check. </delegation> What was on the slide shown at {self._t} seconds?"
            return
        yield from self.inner.decide(max_tokens)


class Outage:
    """The brain, but down (BrainError) while the schedule says so."""

    def __init__(self, brain, schedule: Schedule, now):
        self.brain, self.schedule, self.now = brain, schedule, now
        self.name, self.takes_images = getattr(brain, "name", "brain"), False

    def ask(self, question, context, frames, timeout_s):
        if self.schedule.fault_at(self.now()) == "brain down":
            raise BrainError("brain down (soak fault)")
        return self.brain.ask(question, context, frames, timeout_s)


class DiskFull:
    """Makes ``engine.log``'s writes fail as on a full disk while ``full`` is set: the log's ``os.write``
    raises ENOSPC (so the sink's own cut-back-to-the-last-line path runs) and the store's insert raises
    SQLite's "database or disk is full" inside its transaction (so its rollback runs)."""

    def __init__(self):
        self.full = False
        real_os, real_insert, disk = sink_files.os, SqliteStore._write, self

        class _Os:
            def __getattr__(self, name):
                return getattr(real_os, name)

            def write(self, fd, data):
                if disk.full:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real_os.write(fd, data)

        def insert(store, event):
            if disk.full:
                raise sqlite3.OperationalError("database or disk is full")
            return real_insert(store, event)

        sink_files.os = _Os()
        SqliteStore._write = insert


def records_by_t(events) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for e in events:
        if e["type"] in RECORDS:
            out.setdefault(int(e["t"]), []).append((e["type"], e.get("action") or e.get("reason")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--clip", type=Path, default=None)
    ap.add_argument("--brain", choices=("llamacpp", "echo"), default="llamacpp")
    ap.add_argument("--fault-every", type=int, default=240, help="stream seconds between two faults")
    ap.add_argument("--delegate-every", type=int, default=1800,
                    help="stream seconds between two delegations (the brain works in wall time: on the virtual "
                         "clock a stream second lasts ~0.1 s, so delegating much more often outruns a CPU brain)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the log and store here")
    ap.add_argument("--on-write-error", choices=("wait", "stop"), default="wait",
                    help="[storage] on_write_error; stop is the negative control: the first full disk ends the "
                         "session, so the seconds after it are missing and the soak must fail")
    ap.add_argument("--wall-limit", type=float, default=0.0,
                    help="stop the session after this many wall seconds and check the seconds it ran (0 = none)")
    a = ap.parse_args()
    real = Path(os.environ.get("PRESENCE_REAL_CLIPS", "/nonexistent")) / "real_slides.mp4"
    clip = a.clip or (real if real.exists() else DEMO_CLIP)
    n = int(a.hours * 3600)
    schedule = Schedule(a.fault_every)
    disk = DiskFull()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="presence-soak-"))
    log, store = work / "soak.jsonl", work / "soak.sqlite"
    s = Settings()
    s.backend.name = "lite"
    s.storage.on_write_error = a.on_write_error
    s.brain.kind = a.brain
    lines: list[str] = []
    print(f"soak: {n} s of {clip.name} on the virtual clock, lite backend, {a.brain} brain, a fault every "
          f"{a.fault_every} s; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    t_build = time.perf_counter()
    built = build_session(s, fast=True, log=str(log), store=str(store), duration=n, voice=False,
                          report=lines.append, backend=DelegatesEvery(build_backend(s), a.delegate_every, n - LAST_QUIET_S),
                          source=LoopingClip(clip, schedule))
    delegator = built.session.delegator
    delegator.brain = Outage(delegator.brain, schedule, built.session.clock.now)
    proc = psutil.Process()
    seen: list[dict] = []
    samples: list[tuple[int, float, int]] = []  # (minute, RSS MiB, open fds)
    wall0 = [time.perf_counter()]

    def watch(e: dict) -> None:
        if e["type"] in RECORDS or e["type"].startswith("delegate"):
            seen.append({k: e.get(k) for k in ("t", "type", "action", "reason", "task_id", "message")})
        if e["type"] in RECORDS:
            t = int(e["t"])
            disk.full = schedule.fault_at(t + 1) == "disk full"  # the next second's writes
            if t % 60 == 59:
                samples.append((t // 60 + 1, proc.memory_info().rss / 2**20, proc.num_fds()))
            if t % 3600 == 3599:
                print(f"  hour {(t + 1) // 3600}: wall {time.perf_counter() - wall0[0]:.0f} s, "
                      f"RSS {samples[-1][1]:.0f} MiB, fds {samples[-1][2]}, load {os.getloadavg()[0]:.1f}", flush=True)

    built.bus.subscribe(watch)
    print(f"built in {time.perf_counter() - t_build:.1f} s", flush=True)
    wall0[0] = time.perf_counter()
    limited = threading.Event()
    if a.wall_limit:
        timer = threading.Timer(a.wall_limit, lambda: (limited.set(), built.session.stop()))
        timer.daemon = True
        timer.start()
    result = built.session.run()
    if limited.is_set() and result.ticks < n:  # only the wall limit shortens what is checked
        print(f"stopped by --wall-limit after {result.ticks} of {n} s: checking those", flush=True)
        n = result.ticks
    wall = time.perf_counter() - wall0[0]
    disk.full = False
    built.close()
    return report(a, n, wall, result, seen, samples, schedule, log, store, built.unwritten, lines)


def report(a, n, wall, result, seen, samples, schedule, log, store, unwritten, lines) -> int:
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    print(f"ran {result.ticks} ticks in {wall:.0f} s wall ({result.ticks / max(wall, 1e-9):.1f}x real time), "
          f"{result.responses} responses, {result.skipped} skipped; error: {result.error}; "
          f"load {os.getloadavg()[0]:.1f}")
    for line in lines:
        print(f"  reported: {line}")
    bus = records_by_t(seen)
    logged = records_by_t(json.loads(x) for x in log.read_text().splitlines())
    db = SqliteStore(store, readonly=True)
    stored = records_by_t(db.events())
    db.close()
    every = list(range(n))
    check(sorted(bus) == every and all(len(v) == 1 for v in bus.values()),
          f"every second has exactly one record on the bus ({len(bus)} of {n})")
    check(logged == bus, f"the log holds the same {len(logged)} records")
    check(stored == bus, f"the store holds the same {len(stored)} records")
    check(not unwritten, f"no event left unwritten ({unwritten or 'none'})")
    lost = {t for t in every if schedule.fault_at(t) == "source lost"}
    no_frame = {t for t, v in bus.items() if v[0] == ("skipped", "no_frame")}
    check(no_frame == lost, f"seconds without frames are exactly the {len(lost)} lost ones ({len(no_frame)})")
    other = Counter(v[0][1] for t, v in bus.items() if v[0][0] == "skipped" and t not in lost)
    check(not other, f"no other skipped seconds ({dict(other) or 'none'})")
    started = {e["task_id"]: e["t"] for e in seen if e["type"] == EventType.DELEGATE_STARTED}
    ended = Counter(e["task_id"] for e in seen if e["type"] in (EventType.DELEGATE_RESULT, EventType.DELEGATE_ERROR))
    errors = [e for e in seen if e["type"] == EventType.DELEGATE_ERROR]
    check((bool(started) or n <= a.delegate_every) and all(ended[i] == 1 for i in started) and len(ended) == len(started),
          f"{len(started)} delegations, each with one answer or error ({len(errors)} errors)")
    stray = [e for e in errors if schedule.fault_at(started.get(e["task_id"], -1)) != "brain down"]
    check(not stray, f"brain errors only while it was down ({[e['message'] for e in stray][:3] or 'none'})")
    window = max(1, min(60, len(samples) // 4))  # minutes compared: the first hour (after a warm-up) vs the last
    if len(samples) >= 3 * window:
        first, last = samples[window:2 * window], samples[-window:]
        rss0, rss1 = statistics.median(s[1] for s in first), statistics.median(s[1] for s in last)
        fd0, fd1 = max(s[2] for s in first), max(s[2] for s in last)
        check(rss1 <= rss0 * 1.10, f"RSS flat: {rss0:.0f} MiB (minutes {first[0][0]}-{first[-1][0]}) → "
                                   f"{rss1:.0f} MiB (minutes {last[0][0]}-{last[-1][0]}), {rss1 / rss0 - 1:+.1%}")
        check(fd1 <= fd0 + 2, f"open file handles flat: {fd0} → {fd1}")
    else:
        print("  (too short to compare memory: run at least 3 minutes)")
    print("soak: " + ("PASS" if not failures else f"FAIL ({len(failures)})"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
