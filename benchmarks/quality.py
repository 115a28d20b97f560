"""Interaction quality on the procedural suite: generate it from benchmarks/suite.toml, run the
baselines (never, always, heuristic, lite, and --backend/--model if given) through the same session
loop, print the table and the goals.

    python benchmarks/quality.py [--quick] [--backend B --model M] [--work DIR]

Goals (issue 10): lite > heuristic > both trivial baselines on SW-F1; lite duplicate-reply rate
≤ 10 %; lite tick p95 ≤ 1 s. Figures are printed whatever they are.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.commands.eval import backend_factory  # noqa: E402
from engine.backends.base import BackendError  # noqa: E402
from engine.eval.runner import markdown_table, run_suite, write_report  # noqa: E402
from engine.eval.scenarios import load_spec, make_suite  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "benchmarks" / "suite.toml"))
    ap.add_argument("--quick", action="store_true", help="the quick subset: one shortest clip per family")
    ap.add_argument("--backend", default="", help="an extra backend to compare (torch, llamacpp, openai, …)")
    ap.add_argument("--model", default="")
    ap.add_argument("--only", default="", help="only these baselines, comma-separated")
    ap.add_argument("--work", default="", help="suite and report directory (default: a temp dir)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="presence-quality-"))
    spec = load_spec(a.spec)
    t0 = time.perf_counter()
    make_suite(work / "suite", spec, quick=a.quick)
    print(f"suite: {work / 'suite'} ({'quick' if a.quick else 'full'}, seed {spec.seed}) "
          f"generated in {time.perf_counter() - t0:.1f} s")
    names = a.only.split(",") if a.only else ["never", "always", "heuristic", "lite"]
    if a.backend:
        names.append(a.backend)
    rows, runs = [], {}
    for name in names:
        try:
            factory = backend_factory(name, a.model if name == a.backend else "")
            run = run_suite(work / "suite", factory, name, quick=False, progress=print)
        except BackendError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        write_report(run, work / "reports" / name)
        rows.append((name, run.summary()))
        runs[name] = run
        print(f"{name}: {run.wall_s:.1f} s wall" + (f"  counters {run.counters}" if run.counters else ""))
    print()
    print(markdown_table(rows))
    s = dict(rows)
    if {"lite", "heuristic", "never", "always"} <= s.keys():
        f = {k: s[k]["sw_f1"] or 0.0 for k in s}
        print("\ngoals:")
        print(f"  lite > heuristic > never, always on SW-F1: {f['lite']:.3f} > {f['heuristic']:.3f} > "
              f"{f['never']:.3f}, {f['always']:.3f} → "
              f"{'MET' if f['lite'] > f['heuristic'] > max(f['never'], f['always']) else 'NOT MET'}")
        d = s["lite"]["duplicate_rate"]
        print(f"  lite duplicate-reply rate ≤ 10 %: {d:.1%} → {'MET' if d <= 0.10 else 'NOT MET'}")
        p = s["lite"]["tick_p95_ms"] or 0.0
        print(f"  lite tick p95 ≤ 1 s: {p:.0f} ms → {'MET' if p <= 1000 else 'NOT MET'}")
        print(f"  heuristic/lite SW-F1 ratio: {f['heuristic'] / f['lite']:.2f}" if f["lite"] else "")
    print(f"\nreports: {work / 'reports'}   total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
