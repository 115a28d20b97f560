"""UI tests run offscreen (no display needed). `gui`-marked tests start their own Xvfb and run the app in
a subprocess with QT_QPA_PLATFORM=xcb (one process cannot switch Qt platforms)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.xvfb_display import xvfb_display

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="session", autouse=True)
def collect_on_the_gui_thread(qapp):
    """As the app does (``app.gui._app``): cycles holding Qt objects are freed on this thread, never on a
    worker's — a widget of an earlier test freed by a session thread's collection crashed the process."""
    from ui.gc_guard import install

    install(qapp)


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


@pytest.fixture
def xvfb():
    with xvfb_display(90, 110, "apt-get install xvfb libxcb-icccm4 libxcb-keysyms1") as display:
        yield display
