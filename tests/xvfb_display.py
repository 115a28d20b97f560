"""One private Xvfb display for tests that need a real X server (the UI suite, the installed app)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_display(first: int, count: int) -> int:
    for n in range(first, first + count):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 6000 + n)) != 0:
                    return n
    raise RuntimeError("no free X display number")


@contextmanager
def xvfb_display(first: int, count: int, install_hint: str) -> Iterator[str]:
    """``:N`` of a fresh 1280×800 Xvfb; skips the test with the reason when there is none.
    ``first``: where to look for a free number (each suite its own range, so they never collide)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip(f"Xvfb is not installed ({install_hint})")
    n = free_display(first, count)
    proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    try:
        yield f":{n}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
