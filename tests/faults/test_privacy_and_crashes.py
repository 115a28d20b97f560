"""Credentials never reach the log or the store; inputs that used to crash are one line with the right
exit code."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from app.wiring import DEMO_CLIP
from engine.source import redact_url
from tests.faults.cli import presence


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://cam:s3cret@10.0.0.2:554/live", "rtsp://cam:***@10.0.0.2:554/live"),
    ("https://u:p@host:8/a?b=1", "https://u:***@host:8/a?b=1"),
    ("http://user@host/x", "http://user@host/x"),
    ("/videos/me@home.mp4", "/videos/me@home.mp4"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


@pytest.mark.skipif(not DEMO_CLIP.exists(), reason="demo clip missing")
def test_a_stream_password_never_reaches_the_log_or_the_store(tmp_path):
    """A real HTTP server on loopback serves the demo clip; the URL carries user:password."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DEMO_CLIP.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://viewer:hunter2secret@127.0.0.1:{server.server_address[1]}/{DEMO_CLIP.name}"
    log, store = tmp_path / "run.jsonl", tmp_path / "s.sqlite"
    try:
        r = presence("run", "--headless", "--quiet", "--source", url, "--backend", "heuristic", "--no-speak",
                     "--set", "heuristic.ocr=false", "--duration", "3", "--log", str(log), "--store", str(store))
    finally:
        server.shutdown()
    # a file served over HTTP plays out faster than real time and may end as a "stream ended" (exit 3)
    assert r.returncode in (0, 3), r.stderr
    assert '"session_started"' in log.read_text() and "viewer:***@127.0.0.1" in log.read_text()
    for f in (log, store, *tmp_path.glob("s.sqlite-*")):
        assert b"hunter2secret" not in f.read_bytes(), f
    assert "hunter2secret" not in r.stdout + r.stderr


def test_a_negative_webcam_index_is_one_line_not_a_segfault(tmp_path):
    r = presence("run", "--headless", "--source", "webcam:-1", "--backend", "heuristic", "--no-speak",
                 "--duration", "2", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "webcam:0" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_non_finite_or_negative_settings_are_refused(tmp_path, value):
    r = presence("run", "--headless", "--set", f"talk.cooldown_s={value}", "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cooldown_s" in r.stderr, r.stderr
    r = presence("run", "--headless", "--duration", value, "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 2 and "--duration" in r.stderr


def test_a_backend_that_never_answers_is_a_failed_run(tmp_path):
    """An OpenAI-compatible server that is down for the whole run: every second is logged as skipped,
    and the run exits 4 with one line instead of 0."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "run.jsonl"
    r = presence("run", "--headless", "--fast", "--quiet", "--backend", "openai", "--url", f"http://127.0.0.1:{port}/v1",
                 "--model", "m", "--no-speak", "--duration", "3", "--set", "backend.timeout_s=1",
                 "--set", "backend.openai.retries=0", "--log", str(log), "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 4, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "never answered" in lines[0]
    assert log.read_text().count('"reason":"backend_error"') == 3
