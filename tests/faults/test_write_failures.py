"""Nothing lost, never silent: full disks (a real tmpfs where root may mount one, an injected ENOSPC
elsewhere), a store locked by another process, bad --log/--store paths, signals, file permissions."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.wiring import DEMO_CLIP, build_session
from engine.log import JsonlLog, SqliteStore
from tests.engine.fakes import ArraySource, ScriptedBackend, solid
from tests.faults.cli import presence

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not DEMO_CLIP.exists(), reason=f"demo clip missing: {DEMO_CLIP}")


def lines_of(path: Path) -> list[dict]:
    """Every line must be a whole JSON object (a log cut mid-line fails here)."""
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the log ends mid-line"
    return [json.loads(x) for x in raw.decode().splitlines()]


@pytest.fixture
def tiny_disk(tmp_path, request):
    """A real 12 KiB filesystem (tmpfs; ``@pytest.mark.disk_kib(n)`` for another size). Needs root and
    mount; skipped with the reason otherwise."""
    marker = request.node.get_closest_marker("disk_kib")
    size = marker.args[0] if marker else 12
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the injected ENOSPC tests cover it")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_ends_the_run_with_exit_5_one_line_and_a_whole_log(tiny_disk, tmp_path):
    log, store = tiny_disk / "run.jsonl", tmp_path / "s.sqlite"
    r = presence("run", "--headless", "--fast", "--quiet", "--backend", "heuristic", "--no-speak",
                 "--set", "heuristic.ocr=false", "--log", str(log), "--store", str(store))
    assert r.returncode == 5, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "disk is full" in err[0] and "events could not be written" in err[0], err
    events = lines_of(log)
    seconds = [int(e["t"]) for e in events if e["type"] in ("decision", "skipped")]
    assert seconds == list(range(len(seconds))) and len(seconds) < 60  # contiguous until the disk filled
    db = SqliteStore(store, readonly=True)
    stored = db.events()
    db.close()
    assert any(e["type"] == "error" and e["where"] == "write" and "disk is full" in e["message"] for e in stored)
    assert stored[-1]["type"] == "session_ended" and stored[-1]["error"]


@pytest.mark.disk_kib(128)  # the whole 40 s log must fit once the ballast is gone
def test_wait_mode_holds_events_until_space_returns_no_hole(tiny_disk, tmp_path):
    """The disk is full from the start (a ballast file); space returns while the session runs: every
    second reaches the log, in order."""
    ballast = tiny_disk / "ballast"
    with open(ballast, "wb") as fh:
        try:
            fh.write(b"\0" * 128 * 1024)
        except OSError:
            pass
    settings = Settings()
    settings.storage.on_write_error, settings.storage.retry_s = "wait", 0.1
    notices: list[str] = []

    def report(line: str) -> None:
        notices.append(line)
        if "holding events" in line:
            ballast.unlink()  # the user frees space

    frames = [(float(t), solid(t * 7 % 255)) for t in range(40)]
    built = build_session(settings, fast=True, backend=ScriptedBackend({5: "</response> five"}),
                          source=ArraySource(frames), log=str(tiny_disk / "run.jsonl"), store=str(tmp_path / "s.db"),
                          voice=False, report=report)
    result = built.session.run()
    built.close()
    assert result.error is None and any("disk is full" in n for n in notices)
    events = lines_of(tiny_disk / "run.jsonl")
    assert [int(e["t"]) for e in events if e["type"] == "decision"] == list(range(40))
    assert events[0]["type"] == "session_started" and events[-1]["type"] == "session_ended"


class ENOSPCAfter:
    """FAKE disk (for machines without tmpfs): os.write fails with ENOSPC from call ``start`` to ``stop``."""

    def __init__(self, start: int, stop: int | None = None):
        self.calls, self.start, self.stop = 0, start, stop

    def __call__(self, fd, data):
        self.calls += 1
        if self.calls > self.start and (self.stop is None or self.calls <= self.stop):
            os_write(fd, bytes(data)[: len(data) // 2])  # a real disk often takes part of the line first
            raise OSError(errno.ENOSPC, "No space left on device")
        return os_write(fd, data)


os_write = os.write


@pytest.mark.parametrize("mode", ["stop", "wait"])
def test_injected_enospc_never_cuts_a_line_and_never_passes_silently(tmp_path, monkeypatch, mode):
    import engine.log as log_module

    fake = ENOSPCAfter(start=12, stop=None if mode == "stop" else 20)
    monkeypatch.setattr(log_module.os, "write", fake)
    settings = Settings()
    settings.storage.on_write_error, settings.storage.retry_s = mode, 0.0
    notices: list[str] = []
    frames = [(float(t), solid(t)) for t in range(30)]
    built = build_session(settings, fast=True, backend=ScriptedBackend(), source=ArraySource(frames),
                          log=str(tmp_path / "run.jsonl"), store=str(tmp_path / "s.db"), voice=False,
                          report=notices.append)
    result = built.session.run()
    built.close()
    monkeypatch.undo()
    events = lines_of(tmp_path / "run.jsonl")
    seconds = [int(e["t"]) for e in events if e["type"] == "decision"]
    if mode == "stop":
        assert result.error_kind == "write" and "disk is full" in result.error
        assert seconds == list(range(len(seconds))) and len(seconds) < 30
        assert built.loss_note() and "could not be written" in built.loss_note()
    else:
        assert result.error is None and seconds == list(range(30))  # held, then written in order: no hole
        assert any("holding events" in n for n in notices)


def test_wait_mode_with_a_full_buffer_ends_the_session(tmp_path, monkeypatch):
    import engine.log as log_module

    monkeypatch.setattr(log_module.os, "write", ENOSPCAfter(start=3))
    settings = Settings()
    settings.storage.on_write_error, settings.storage.buffer_s, settings.storage.retry_s = "wait", 10.0, 0.0
    frames = [(float(t), solid(t)) for t in range(60)]
    built = build_session(settings, fast=True, backend=ScriptedBackend(), source=ArraySource(frames),
                          log=str(tmp_path / "run.jsonl"), store=str(tmp_path / "s.db"), voice=False,
                          report=lambda _line: None)
    result = built.session.run()
    built.close()
    assert result.error_kind == "write" and "buffer is full" in result.error
    assert 10 <= result.ticks <= 14  # ended once ~10 s of events were held


def test_a_store_locked_by_another_process_is_waited_for(tmp_path):
    store = tmp_path / "s.sqlite"
    SqliteStore(store).close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"db = sqlite3.connect({str(store)!r}, isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(4); db.execute('COMMIT')\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    log = tmp_path / "run.jsonl"
    r = presence("run", "--headless", "--fast", "--quiet", "--backend", "heuristic", "--no-speak", "--duration", "5",
                 "--set", "heuristic.ocr=false", "--log", str(log), "--store", str(store))
    holder.wait(10)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(store)
    sessions = db.execute("SELECT session FROM sessions").fetchall()
    types = [t for (t,) in db.execute("SELECT type FROM events ORDER BY id")]
    assert len(sessions) == 1 and types[0] == "session_started" and types.count("decision") == 5


@pytest.mark.parametrize("kind", ["directory", "unwritable", "corrupt"])
def test_bad_log_or_store_paths_are_one_line_exit_2(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "directory":
        target.mkdir()
    elif kind == "unwritable":
        target = Path("/proc/presence-cannot-write-here/run.jsonl")
    else:
        target.write_bytes(os.urandom(8192))
    flag = "--store" if kind == "corrupt" else "--log"
    extra = [] if flag == "--store" else ["--store", str(tmp_path / "ok.sqlite")]
    r = presence("run", "--headless", "--fast", "--quiet", "--backend", "heuristic", "--no-speak", "--duration", "2",
                 flag, str(target), *extra)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and str(target.name) in r.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signals_end_the_session_cleanly(tmp_path, sig, code):
    log = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--headless", "--quiet", "--backend", "heuristic",
                             "--no-speak", "--set", "heuristic.ocr=false", "--log", str(log),
                             "--store", str(tmp_path / "s.sqlite")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or b'"decision"' not in log.read_bytes()):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    events = lines_of(log)
    assert events[-1]["type"] == "session_ended" and events[-1]["error"] is None


def test_logs_stores_and_settings_are_private(tmp_path):
    log = JsonlLog(tmp_path / "new" / "run.jsonl")
    log.close()
    store = SqliteStore(tmp_path / "data" / "s.sqlite")
    store.close()
    from app.config import save_settings

    cfg = save_settings(Settings(), tmp_path / "cfg" / "config.toml")
    for f in (tmp_path / "new" / "run.jsonl", tmp_path / "data" / "s.sqlite", cfg):
        assert f.stat().st_mode & 0o777 == 0o600, f
    for d in (tmp_path / "new", tmp_path / "data", tmp_path / "cfg"):
        assert d.stat().st_mode & 0o777 == 0o700, d
