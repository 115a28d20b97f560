"""Run a generated suite through the session loop and score it.

Every clip goes through the same :class:`engine.session.Session` a user's ``presence run --fast``
uses (virtual clock, talkativeness with dedup, memory), with the annotation's questions scheduled
at their stream times through ``submit_query(text, at=t)``. The decisions come back from the event
bus; replies are scored with :mod:`engine.eval.metrics`.

    suite DIR ──▶ for each clip: Session(backend_factory(), ClipSource(mp4), VirtualClock)
                                 ──decision events──▶ replies, latencies ──▶ ClipScore
              ──▶ report.json · report.md · timelines/<clip>.png
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.backends.base import Backend
from engine.clock import VirtualClock
from engine.context import HintOptions
from engine.eval import metrics
from engine.eval.clipsource import ClipSource
from engine.eval.hints import with_hints
from engine.events import EventBus, EventType
from engine.session import Session, SessionOptions

BackendFactory = Callable[[], Backend]


@dataclass
class ClipRun:
    annotation: dict
    replies: list[metrics.Reply]
    decisions: list[dict]  # compact per-tick records: t, action, text, latency total
    score: metrics.ClipScore
    wall_s: float = 0.0
    error: str | None = None


@dataclass
class SuiteRun:
    backend: str
    model: str = ""
    clips: list[ClipRun] = field(default_factory=list)
    wall_s: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return metrics.summarize([c.score for c in self.clips])

    def by_family(self) -> dict[str, dict]:
        fams: dict[str, list[metrics.ClipScore]] = {}
        for c in self.clips:
            fams.setdefault(c.score.family, []).append(c.score)
        return {f: metrics.summarize(s) for f, s in sorted(fams.items())}


def load_suite(suite_dir: str | Path, quick: bool = False, only: str = "") -> list[tuple[Path, dict]]:
    """(video path, annotation) per clip listed in ``suite.json``; ``only`` filters names by substring."""
    d = Path(suite_dir)
    manifest = d / "suite.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"no suite.json in {d} (create one with `presence eval make-suite {d}`)")
    names = json.loads(manifest.read_text())["clips"]
    out = []
    for n in names:
        ann = json.loads((d / f"{n}.json").read_text())
        if only and only not in n:
            continue
        out.append((d / ann["video_path"], ann))
    if quick:  # one clip per family, the shortest
        best: dict[str, tuple[Path, dict]] = {}
        for p, a in out:
            if a["task_type"] not in best or a["duration"] < best[a["task_type"]][1]["duration"]:
                best[a["task_type"]] = (p, a)
        out = list(best.values())
    return out


def run_clip(video: Path, ann: dict, backend: Backend, options: SessionOptions | None = None) -> ClipRun:
    bus = EventBus()
    decisions: list[dict] = []

    def collect(ev: dict) -> None:
        if ev["type"] == EventType.DECISION:
            decisions.append({"t": int(ev["t"]), "action": ev["action"], "text": ev.get("text", ""),
                              "ms": ev["latency_ms"]["total"], "suppressed": ev.get("suppressed", "")})
        elif ev["type"] == EventType.SKIPPED:
            decisions.append({"t": int(ev["t"]), "action": "skipped", "text": ev.get("reason", ""), "ms": 0.0})

    bus.subscribe(collect)
    opts = options or SessionOptions()
    opts.source_label = str(video)
    opts.duration_s = float(ann["duration"])
    session = Session(backend, ClipSource(video), bus=bus, clock=VirtualClock(), options=opts)
    for q in ann.get("question", []):
        session.submit_query(q["content"], source="eval", at=float(q["time"]))
    t0 = time.perf_counter()
    result = session.run()
    wall = time.perf_counter() - t0
    replies = [metrics.Reply(d["t"], d["text"], d["action"] == "delegate") for d in decisions
               if d["action"] in ("response", "delegate")]
    lat = [d["ms"] for d in decisions if d["action"] not in ("skipped",)]
    return ClipRun(ann, replies, decisions, metrics.score_clip(ann, replies, lat), wall, result.error)


def run_suite(suite_dir: str | Path, factory: BackendFactory, backend_name: str, model: str = "",
              quick: bool = False, only: str = "", progress: Callable[[str], None] | None = None,
              options_factory: Callable[[], SessionOptions] | None = None,
              hints: HintOptions | None = None) -> SuiteRun:
    run = SuiteRun(backend_name, model)
    t0 = time.perf_counter()
    for video, ann in load_suite(suite_dir, quick, only):
        backend = with_hints(factory(), hints)
        try:
            cr = run_clip(video, ann, backend, options_factory() if options_factory else None)
            _add_counters(run, backend)
        finally:
            backend.close()
        run.clips.append(cr)
        if progress:
            s = cr.score
            f = "—" if s.sw_f1 is None else f"{s.sw_f1:.2f}"
            progress(f"{backend_name:>10} {ann['video_name']:<24} SW-F1 {f:>5}  TP {s.tp} FP {s.fp} FN {s.fn}  "
                     f"replies {s.replies}  {cr.wall_s:.1f}s" + (f"  ERROR {cr.error}" if cr.error else ""))
    run.wall_s = time.perf_counter() - t0
    return run


def _add_counters(run: SuiteRun, backend: Backend) -> None:
    """Sum a backend's own counters (lite: OCR calls, LLM calls kept/skipped) into the report."""
    for k, v in (getattr(backend, "counters", None) or {}).items():
        run.counters[k] = run.counters.get(k, 0) + v


def run_to_json(run: SuiteRun) -> dict:
    return {
        "backend": run.backend, "model": run.model, "wall_s": round(run.wall_s, 2), "summary": run.summary(),
        "by_family": run.by_family(), "backend_counters": run.counters,
        "clips": [{**{k: v for k, v in asdict(c.score).items() if k != "latencies_ms"},
                   "sw_f1": c.score.sw_f1, "wall_s": round(c.wall_s, 2), "error": c.error,
                   "replies": [[r.t, r.text] for r in c.replies]} for c in run.clips],
    }


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


COLUMNS = [("sw_f1", "SW-F1"), ("po_hit_rate", "PO hit (±2 s)"), ("pauc", "PAUC ω=0.5"),
           ("duplicate_rate", "dup rate"), ("false_alarms_per_min", "FA/min silence"),
           ("tick_p50_ms", "tick p50 ms"), ("tick_p95_ms", "tick p95 ms"), ("tick_p99_ms", "tick p99 ms"), ("replies", "replies")]


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    head = "| backend | " + " | ".join(c[1] for c in COLUMNS) + " |"
    sep = "|---|" + "---|" * len(COLUMNS)
    body = [f"| {name} | " + " | ".join(_fmt(s.get(k)) for k, _ in COLUMNS) + " |" for name, s in rows]
    return "\n".join([head, sep, *body])


def write_report(run: SuiteRun, out_dir: str | Path, plots: bool = True) -> Path:
    from engine.eval.plot import timeline_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = run_to_json(run)
    (out / "report.json").write_text(json.dumps(data, indent=1))
    lines = [f"# Quality report: {run.backend}" + (f" ({run.model})" if run.model else ""), "",
             markdown_table([(run.backend, data["summary"])]), "", "## By family", "",
             markdown_table(list(data["by_family"].items())).replace("| backend |", "| family |"), "",
             "## Clips", "", "| clip | SW-F1 | TP | FP | FN | replies | dup |", "|---|---|---|---|---|---|---|"]
    for c in data["clips"]:
        lines.append(f"| {c['name']} | {_fmt(c['sw_f1'])} | {c['tp']} | {c['fp']} | {c['fn']} | {c['replies']} | "
                     f"{c['duplicates']} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    if plots:
        (out / "timelines").mkdir(exist_ok=True)
        for c in run.clips:
            timeline_png(c, out / "timelines" / f"{c.annotation['video_name']}.png", run.backend)
    return out / "report.json"
