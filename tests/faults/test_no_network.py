"""No network unless configured, proven from outside the process: a whole session (with OCR, which
loads onnxruntime) and the desktop app's start-up run under `strace -f`, and any IPv4/IPv6 connect —
a DNS lookup included — fails the test. Runs longer than the ~10 s after which onnxruntime's
telemetry used to look up its host."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt install strace)")]
INET = re.compile(r"connect\(\d+, \{sa_family=AF_INET6?,.*")


def traced(args: list[str], trace: Path, seconds: float | None = None, env: dict | None = None):
    cmd = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), sys.executable, *args]
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    e.pop("ORT_DISABLE_TELEMETRY", None)  # the app must set it itself
    errfile = trace.with_suffix(".err")
    with open(errfile, "w") as err_fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=subprocess.DEVNULL, stderr=err_fh, start_new_session=True)
        if seconds is not None:
            time.sleep(seconds)
            os.killpg(proc.pid, signal.SIGKILL)  # strace and the app it traces; the trace holds what happened
        proc.wait(timeout=120)
    err = errfile.read_text()
    lookups = INET.findall(trace.read_text()) if trace.exists() else []
    return proc.returncode, err, lookups


def test_a_whole_session_with_ocr_makes_no_network_connection(tmp_path):
    rc, err, lookups = traced(["-m", "app.cli", "run", "--headless", "--quiet", "--backend", "heuristic",
                               "--no-speak", "--duration", "14", "--store", str(tmp_path / "s.sqlite")],
                              tmp_path / "trace.txt")
    if rc != 0 and "ptrace" in err.lower():
        pytest.skip(f"strace cannot trace here: {err.strip()[-200:]}")
    assert rc == 0, err[-2000:]
    assert lookups == [], lookups


def test_the_desktop_app_start_up_makes_no_network_connection(tmp_path):
    env = {"QT_QPA_PLATFORM": "offscreen", "PRESENCE_CONFIG_DIR": str(tmp_path / "cfg"),
           "PRESENCE_DATA_DIR": str(tmp_path / "data")}
    rc, err, lookups = traced(["-m", "app.cli"], tmp_path / "trace.txt", seconds=13, env=env)
    assert lookups == [], lookups
