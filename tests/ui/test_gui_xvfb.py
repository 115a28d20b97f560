"""A real window on a real X server (Xvfb): screenshots under test-output/ui/, and a capture of that
display through the app's screen source (plugins.capture.screen.ScreenSource)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
TEST_OUTPUT = ROOT / "test-output"


def test_real_window_and_screen_capture_under_xvfb(xvfb, tmp_path):
    out = TEST_OUTPUT / "ui"
    env = dict(os.environ, DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", PRESENCE_CONFIG_DIR=str(tmp_path / "cfg"),
               PRESENCE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "ui" / "xvfb_app.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    r = json.loads(line[len("RESULT "):])
    assert r["platform"] == "xcb"
    assert r["session_done"] and r["cells"] == 30
    for name in ("xvfb_display.png", "xvfb_window.png"):
        assert (out / name).stat().st_size > 5000, name
    if r["screen_source"] != "ok":
        pytest.skip(f"plugins.capture.screen unavailable: {r['screen_source']}")
    assert r["capture_shape"] == [800, 1280, 3]
    assert r["capture_std"] > 5  # the window is on the captured screen: not a blank frame
    assert r["screen_choices"] == ["screen:1"] and r["screen_thumbs"] == 1
    assert r["thumb_std"] > 5  # the screen's thumbnail shows the screen (the window on it), not black
    assert "window:Notes - xvfb test" in r["window_choices"] and "window:Presence" not in r["window_choices"]
    assert r["live_done"] and r["live_cells"] >= 2 and r["live_preview"]
    # the app's own window: visible in a plain capture, a flat mask in the capture the session uses
    assert r["own_rect"][2] > 200 and r["own_rect"][3] > 200
    assert r["unmasked_window_std"] > 5 and r["masked_window_std"] == 0.0
