"""Capture exclusions by window title or application (``[capture] exclude_windows``), on a real X
server (Xvfb) with real X windows (xmessage): the excluded window's rectangle is flat grey in the frame,
exactly, and a window that does not match is captured untouched."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from app.config import Settings
from plugins.capture.exclusions import WindowExclusion, ere_escape, parse_geometries
from plugins.capture.screen import MASK_GREY, ScreenSource
from tests.xvfb_display import xvfb_display

pytestmark = pytest.mark.gui
SECRET = (60, 80, 320, 200)  # left, top, width, height
OTHER = (520, 300, 320, 200)


def _window(title: str, rect, colour: str, *extra: str) -> subprocess.Popen:
    left, top, w, h = rect
    return subprocess.Popen(["xmessage", "-title", title, "-geometry", f"{w}x{h}+{left}+{top}", "-bg", colour,
                             *extra, "account 1234"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def two_windows():
    for tool in ("xdotool", "xmessage"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt install xdotool x11-utils)")
    with xvfb_display(700, 100, "apt install xvfb") as disp, pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", disp)
        wins = [_window("My Bank - Statement", SECRET, "red", "-name", "bankclient"),
                _window("Shopping notes", OTHER, "blue")]
        try:
            deadline = time.time() + 15
            while len(WindowExclusion(["bank", "shopping"]).windows()) < 2 and time.time() < deadline:
                time.sleep(0.1)
            yield disp
        finally:
            for w in wins:
                w.kill()
                w.wait()


def grab(exclude=None) -> np.ndarray:
    src = ScreenSource(monitor=1, exclude=exclude)
    src.open()
    try:
        return src.grab()
    finally:
        src.close()


def region(px: np.ndarray, rect) -> np.ndarray:
    left, top, w, h = rect
    return px[top:top + h, left:left + w]


@pytest.mark.parametrize("pattern", ["BANK - state", "bankclient"])  # a title part (any case) | the application
def test_an_excluded_window_is_masked_exactly_and_another_is_not(two_windows, pattern):
    plain, masked = grab(), grab(WindowExclusion([pattern]))
    assert np.mean(region(plain, SECRET)[..., 0] > 200) > 0.5  # the window is really there, red
    assert (region(masked, SECRET) == MASK_GREY).all()
    outside = np.ones(plain.shape[:2], bool)
    left, top, w, h = SECRET
    outside[top:top + h, left:left + w] = False
    assert (masked[outside] == plain[outside]).all()  # not one pixel more: the blue window and the desktop
    assert np.mean(region(masked, OTHER)[..., 2] > 200) > 0.5


def test_the_setting_reaches_the_screen_source(two_windows, tmp_path):
    from app.wiring import build_session

    s = Settings()
    s.capture.source = "screen:1"
    s.backend.name = "heuristic"
    s.capture.exclude_windows = ["shopping notes"]
    built = build_session(s, store=str(tmp_path / "s.sqlite"), voice=False)
    try:
        px = next(iter(built.session.source.frames())).pixels
    finally:
        built.close()
    assert (region(px, OTHER) == MASK_GREY).all() and not (region(px, SECRET) == MASK_GREY).all()


def test_exclusions_that_cannot_work_refuse_to_capture(monkeypatch, two_windows):
    from engine.source import SourceError

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(SourceError, match="needs xdotool"):
        ScreenSource(exclude=WindowExclusion(["bank"])).open()


def test_patterns_are_literal_text():
    assert ere_escape("a.b (c)|d*") == r"a\.b \(c\)\|d\*"
    assert parse_geometries("WINDOW=1\nX=5\nY=6\nWIDTH=7\nHEIGHT=8\nSCREEN=0\nWINDOW=2\nX=1\nY=2\nWIDTH=3\nHEIGHT=4\n") \
        == [(5, 6, 7, 8), (1, 2, 3, 4)]
