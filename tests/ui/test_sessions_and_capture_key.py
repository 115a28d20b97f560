"""File → Sessions… (list, open, delete with a question, retention) and the pause-capture hot-key.

The hot-key test is end to end on a real X server: a session captures the Xvfb screen through the
app's screen source, ``xdotool`` presses the key (sent to the X server, not to the window), the window
pauses, and the screen is not read at all until the key is pressed again."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.facade import Controller, RunOptions
from engine.events import EventBus
from engine.log import SqliteStore
from ui.main_window import MainWindow, State


def make_session(folder: Path, sid: str, seconds: int, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = SqliteStore(folder / f"{sid}.sqlite")
    bus = EventBus(sid)
    bus.subscribe(db)
    bus.emit(0, "session_started", source="demo.mp4", backend="heuristic")
    for t in range(seconds):
        bus.emit(t, "decision", action="response" if t == 1 else "silence", text=text if t == 1 else "")
    bus.emit(seconds, "session_ended", ticks=seconds)
    db.close()
    return folder / f"{sid}.sqlite"


@pytest.fixture
def window(qtbot, settings):
    win = MainWindow(Controller(settings), first_run_check=False, gpu_total=None, thumbnails=False)
    qtbot.addWidget(win)
    return win


def test_sessions_dialog_lists_opens_and_deletes_after_asking(window, tmp_path):
    folder = tmp_path / "data" / "sessions"
    old = make_session(folder, "20261101-090000-aaaaaa", 5, "An old slide.")
    make_session(folder, "20261201-090000-bbbbbb", 7, "A new slide.")
    (folder / "20261202-corrupt.sqlite").write_bytes(b"not a database" * 10)
    answers = []
    from ui.sessions_dialog import SessionsDialog

    dlg = SessionsDialog(window.controller, window.dialogs.open_session, parent=window,
                         confirm=lambda _w, q: answers.append(q) or len(answers) > 1)
    assert [s.session for s in dlg.sessions] == ["20261201-090000-bbbbbb", "20261101-090000-aaaaaa"]
    assert dlg.table.item(0, 3).text() == "7"  # seconds decided
    assert "cannot read" in dlg.message.text() and "corrupt" in dlg.message.text()  # listed, not fatal
    assert "kept until you delete them" in dlg.retention_label.text()

    dlg.table.selectRow(1)
    dlg.delete_selected()  # the first answer is No: nothing deleted
    assert old.exists() and "aaaaaa" in answers[0]
    dlg.delete_selected()  # Yes
    assert not old.exists() and [s.session for s in dlg.sessions] == ["20261201-090000-bbbbbb"]
    assert dlg.message.text().startswith("Deleted 1 session(s)")

    dlg.table.selectRow(0)
    dlg.open_selected()  # shown read-only in the main window
    assert window.state == State.VIEWING and window.timeline.latest == 6
    assert any(e.get("text") == "A new slide." for e in window.events)


def test_retention_from_the_dialog_uses_the_settings(window, tmp_path):
    folder = tmp_path / "data" / "sessions"
    old = make_session(folder, "20260101-090000-cccccc", 3, "x")
    new = make_session(folder, "20261201-090000-dddddd", 3, "y")
    os.utime(old, (time.time() - 40 * 86400,) * 2)
    window.controller.settings.storage.keep_days = 30
    from ui.sessions_dialog import SessionsDialog

    dlg = SessionsDialog(window.controller, window.dialogs.open_session, parent=window)
    assert "older than 30 days" in dlg.retention_label.text()
    dlg.apply_retention()
    assert not old.exists() and new.exists()
    assert dlg.message.text().startswith("Retention deleted 1 session(s)")


@pytest.mark.slow
@pytest.mark.gui
def test_pause_capture_key_works_from_outside_the_window_and_reads_nothing(qtbot, settings, xvfb, monkeypatch):
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool)")
    pytest.importorskip("mss")
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    from plugins.capture.screen import ScreenSource

    grabs: list[float] = []
    real_grab = ScreenSource._grab
    monkeypatch.setattr(ScreenSource, "_grab", lambda self: grabs.append(time.monotonic()) or real_grab(self))
    settings.capture.source = "screen"
    settings.ui.pause_capture_hotkey = "ctrl+alt+p"
    win = MainWindow(Controller(settings), first_run_check=False, gpu_total=None, thumbnails=False)
    qtbot.addWidget(win)
    win.toolbar.set_source("screen")
    assert win.start(RunOptions(duration=9))
    qtbot.waitUntil(lambda: win.state == State.RUNNING and len(grabs) > 2, timeout=15000)
    assert win.capture_key.is_global, win.capture_key.why_not

    def press():
        subprocess.run(["xdotool", "key", "ctrl+alt+p"], env=dict(os.environ, DISPLAY=xvfb), check=True)

    press()
    qtbot.waitUntil(lambda: win.state == State.PAUSED, timeout=5000)
    paused_at = time.monotonic()
    qtbot.wait(2500)
    resumed_at = time.monotonic()
    press()
    qtbot.waitUntil(lambda: win.state == State.RUNNING, timeout=5000)
    qtbot.waitUntil(lambda: any(e["type"] == "session_ended" for e in win.events), timeout=20000)
    assert not [g for g in grabs if paused_at + 0.2 < g < resumed_at], "the screen was read while paused"
    assert any(g > resumed_at for g in grabs)  # and again after resuming
    skipped = [e for e in win.events if e["type"] == "skipped" and e.get("reason") == "paused"]
    assert len(skipped) >= 2
    assert not win.capture_key.is_global  # the key is let go when the session ends


def test_file_menu_opens_the_sessions_list_and_the_several_sources_window(window):
    from ui.sessions_dialog import SessionsDialog
    from ui.streams_window import StreamsWindow

    actions = {a.text(): a for a in window.menuBar().actions()[0].menu().actions()}
    actions["Sessions…"].trigger()
    actions["Watch several sources…"].trigger()
    assert window.findChild(SessionsDialog) is not None
    streams = window.findChild(StreamsWindow)
    assert streams is not None and streams.isVisible()
    streams.close()
