"""Launch → first decision on the demo clip: the frozen app against the venv's ``presence``, in one run.

    python installers/measure_cold_start.py dist/lite/presence/presence [--runs 3]

Each run starts the command with ``run --headless --fast --no-speak --no-listen --quiet --duration 10 --log F``,
and the time is taken when F first holds a ``decision`` line. The two commands alternate, so a change in
machine load hits both. The first run of each is cold for the OS file cache (or close to it); the median
of all runs is printed as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_decision(cmd: list[str], env: dict) -> tuple[float, float]:
    """(seconds to the first decision record, seconds to exit)."""
    log = Path(tempfile.mkdtemp()) / "run.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "run", "--headless", "--fast", "--no-speak", "--no-listen", "--quiet",
                             "--duration", "10", "--log", str(log)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None or first is None:
        if first is None and log.exists() and '"decision"' in log.read_text():
            first = time.perf_counter() - t0
        if proc.poll() is not None and first is None:
            if '"decision"' in (log.read_text() if log.exists() else ""):
                first = time.perf_counter() - t0
                break
            raise SystemExit(f"{cmd[0]} exited {proc.returncode} without a decision: {proc.stderr.read()[-2000:]}")
        time.sleep(0.01)
    proc.wait()
    return first, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("frozen", help="the frozen presence executable")
    ap.add_argument("--venv", default=str(ROOT / ".venv" / "bin" / "presence"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp())
    env = dict(os.environ, PRESENCE_CONFIG_DIR=str(home / "cfg"), PRESENCE_DATA_DIR=str(home / "data"),
               HF_HUB_OFFLINE="1")
    results: dict[str, list[tuple[float, float]]] = {"frozen": [], "venv": []}
    for _ in range(args.runs):
        for name, exe in (("frozen", args.frozen), ("venv", args.venv)):
            results[name].append(first_decision([exe], env))
    for name, rs in results.items():
        firsts = [r[0] for r in rs]
        print(f"{name:7s} first decision: first run {firsts[0]:.2f} s, median {statistics.median(firsts):.2f} s "
              f"(runs {', '.join(f'{x:.2f}' for x in firsts)}); 10 s of clip done in median "
              f"{statistics.median(r[1] for r in rs):.2f} s")
    print(json.dumps({k: [list(r) for r in v] for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
