"""Capture plugins against real servers and a real X display (Xvfb), never the outside network."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.source import SourceError
from plugins.capture.screen import ScreenSource
from plugins.capture.stream import NetworkStreamSource
from plugins.capture.video_file import VideoFileSource
from plugins.capture.webcam import WebcamSource
from plugins.capture.window import WindowSource


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def take(source, n, timeout=20.0):
    got, deadline = [], time.time() + timeout
    for frame in source.frames():
        got.append(frame)
        if len(got) >= n or time.time() > deadline:
            break
    return got


def test_video_file_frames_are_timed_and_subsampled(short_clip):
    src = VideoFileSource(short_clip, sample_fps=2.0)
    src.open()
    frames = list(src.frames())
    src.close()
    ts = [f.t for f in frames]
    assert len(frames) == 24 and ts == sorted(ts)  # 12 s at 2 samples/s
    # the first frame at or after each point of a fixed 0.5 s grid (5 fps source: frames every 0.2 s)
    assert all(k * 0.5 - 1e-6 <= t < k * 0.5 + 0.2 for k, t in enumerate(ts))
    assert frames[0].pixels.shape == (360, 640, 3)


def test_video_file_end_stop_and_truncation_are_told_apart(short_clip, tmp_path):
    done = VideoFileSource(short_clip, sample_fps=2.0)
    assert len(list(done.frames())) == 24 and done.end_reason == "finished"  # the natural end
    done.close()
    assert done.end_reason == "finished"

    # Stop while a reader thread is between frames: before, the released decoder read as a short file
    # ("video ended early … (truncated or corrupt)")
    src, got, errors = VideoFileSource(short_clip, sample_fps=2.0), [], []
    first = threading.Event()

    def read():
        try:
            for f in src.frames():
                got.append(f)
                first.set()
                time.sleep(0.05)
        except SourceError as exc:
            errors.append(str(exc))

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10)
    src.close()
    reader.join(10)
    assert not errors and 0 < len(got) < 24 and src.end_reason == "closed"

    from make_demo_clip import SLIDES, render_slide

    cut = tmp_path / "cut.avi"  # MJPG frames are independent: a cut file decodes partway, then ends early
    w = cv2.VideoWriter(str(cut), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 360))
    for i in range(50):
        w.write(cv2.cvtColor(render_slide(*SLIDES[i // 25]), cv2.COLOR_RGB2BGR))
    w.release()
    cut.write_bytes(cut.read_bytes()[: int(cut.stat().st_size * 0.6)])
    bad = VideoFileSource(cut, sample_fps=1.0)
    with pytest.raises(SourceError, match="ended early"):
        list(bad.frames())
    assert bad.end_reason == "truncated"


def test_video_file_pause_holds_playback_until_resume(short_clip):
    src = VideoFileSource(short_clip, sample_fps=2.0)
    frames = src.frames()
    assert next(frames).t == 0.0
    src.pause()
    assert src.paused
    got = []
    reader = threading.Thread(target=lambda: got.append(next(frames)))
    reader.start()
    reader.join(0.5)
    assert reader.is_alive() and not got  # held while paused
    src.resume()
    reader.join(5)
    assert len(got) == 1 and 0.5 <= got[0].t < 0.7  # the next sample of the 0.5 s grid: no time skipped
    src.pause()
    closer = threading.Thread(target=lambda: got.append(next(frames, None)))
    closer.start()
    src.close()  # Stop while paused: the reader wakes and ends cleanly
    closer.join(5)
    assert got[-1] is None and src.end_reason == "closed"


def test_webcam_absent_is_one_clear_error():
    with pytest.raises(SourceError, match="no webcam at index 7"):
        WebcamSource(index=7).open()


class MJPEGHandler(BaseHTTPRequestHandler):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in range(60):
                rgb = np.zeros((120, 160, 3), np.uint8)
                rgb[:] = self.colors[(i // 10) % 3]
                ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpg)).encode() + b"\r\n\r\n" + jpg.tobytes() + b"\r\n")
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *a):
        pass


@pytest.mark.network
def test_http_mjpeg_stream_on_loopback():
    server = ThreadingHTTPServer(("127.0.0.1", 0), MJPEGHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = NetworkStreamSource(f"http://127.0.0.1:{server.server_port}/cam.mjpg", fps=10, stall_timeout_s=3)
        src.open()
        frames = take(src, 8)
        src.close()
    finally:
        server.shutdown()
    assert len(frames) >= 5
    assert frames[0].pixels.shape == (120, 160, 3)
    dominant = {int(np.argmax(f.pixels.reshape(-1, 3).mean(0))) for f in frames}
    assert dominant & {0, 1}  # real decoded colours, red first then green


@pytest.mark.network
def test_stream_unreachable_is_one_clear_error():
    port = free_port()  # nothing listens there
    with pytest.raises(SourceError, match="cannot open stream"):
        NetworkStreamSource(f"http://127.0.0.1:{port}/x.mjpg", open_timeout_s=2).open()


# --- a real X display -----------------------------------------------------------------------------

WINDOW_SCRIPT = r"""
import sys
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication(sys.argv)
w = QLabel("Presence capture test")
w.setWindowTitle("PresenceTestWindow")
w.setStyleSheet("background: rgb(220, 30, 30); color: white; font-size: 30px")
w.setGeometry(100, 120, 400, 300)
w.show()
app.exec()
"""


@pytest.fixture(scope="module")
def xvfb_with_window(tmp_path_factory):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    disp = f":{100 + os.getpid() % 400}"
    xvfb = subprocess.Popen(["Xvfb", disp, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    env = dict(os.environ, DISPLAY=disp, QT_QPA_PLATFORM="xcb")
    script = tmp_path_factory.mktemp("win") / "win.py"
    script.write_text(WINDOW_SCRIPT)
    win = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", disp)
        deadline = time.time() + 20
        while time.time() < deadline:
            out = subprocess.run(["xdotool", "search", "--name", "PresenceTestWindow"], capture_output=True,
                                 text=True, env=env).stdout if shutil.which("xdotool") else "x"
            if out.strip():
                break
            time.sleep(0.3)
        time.sleep(0.8)
        yield disp
        win.kill()
        xvfb.kill()


def red_fraction(rgb):
    return float(np.mean((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)))


@pytest.mark.gui
def test_screen_capture_sees_the_window(xvfb_with_window):
    src = ScreenSource(monitor=1, fps=5)
    src.open()
    frames = take(src, 2)
    src.close()
    px = frames[-1].pixels
    assert px.shape == (768, 1024, 3)
    # the 400×300 red window covers ≈15% of the 1024×768 screen
    assert 0.08 < red_fraction(px) < 0.25


@pytest.mark.gui
@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed")
def test_window_capture_by_title(xvfb_with_window):
    src = WindowSource("PresenceTestWindow", fps=5)
    src.open()
    frames = take(src, 2)
    src.close()
    px = frames[-1].pixels
    assert abs(px.shape[1] - 400) <= 4 and abs(px.shape[0] - 300) <= 4
    assert red_fraction(px) > 0.5
    with pytest.raises(SourceError, match="no visible window titled"):
        WindowSource("NoSuchWindow-xyz").open()


def test_screen_without_display_is_one_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("DISPLAY semantics are Linux-only")
    with pytest.raises(SourceError, match="DISPLAY is not set"):
        ScreenSource().open()


def test_cli_source_parsing_errors(tmp_path):
    from app.sources import parse_source

    with pytest.raises(SourceError, match="expected screen"):
        parse_source("screen:abc")
    with pytest.raises(SourceError, match="needs a title"):
        parse_source("window:")
    assert isinstance(parse_source(str(tmp_path / "x.mp4")), VideoFileSource)
    assert isinstance(parse_source("rtsp://127.0.0.1:1/x"), NetworkStreamSource)
    assert Path(parse_source("webcam:2").label) == Path("webcam:2")
