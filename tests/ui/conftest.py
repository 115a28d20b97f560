"""UI tests run offscreen (no display needed). `gui`-marked tests start their own Xvfb and run the app in
a subprocess with QT_QPA_PLATFORM=xcb (one process cannot switch Qt platforms)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Heuristic backend without OCR (fast and deterministic), isolated config and data dirs."""
    from app.config import Settings

    monkeypatch.setenv("PRESENCE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PRESENCE_DATA_DIR", str(tmp_path / "data"))
    s = Settings()
    s.backend.name = "heuristic"
    s.heuristic.ocr = False
    s.voice.speak = False
    return s


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 6000 + n)) != 0:
                    return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb libxcb-icccm4 libxcb-keysyms1)")
    n = _free_display()
    proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=5)
