"""File → Watch several sources…: one timeline tab per stream and one transcript naming the stream, from real
streams (heuristic backend, real clips, the virtual clock) run by the window's StreamsRunner."""

from __future__ import annotations

from ui.streams_window import StreamsWindow


def test_two_streams_fill_their_own_timelines_and_one_named_transcript(qtbot, settings, short_clip, tmp_path):
    window = StreamsWindow(settings)
    qtbot.addWidget(window)
    window.sources.setPlainText(f"{short_clip}\n\n{short_clip}\n{tmp_path / 'missing.mp4'}\n")
    window.start(fast=True, duration=5)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["s1", "s2", "s3"]
    qtbot.waitUntil(lambda: not window.runner.running and window.pump.pending() == 0, timeout=60_000)
    window.pump.drain()
    for name in ("s1", "s2"):
        assert len(window.timelines[name].codes()) == 5  # one cell per second, its own stream's
    assert len(window.timelines["s3"].codes()) == 0
    texts = window.transcript.texts()
    assert any(t.startswith("[s1] ") for t in texts) and any(t.startswith("[s2] ") for t in texts)
    assert window.banner.kind == "error" and "s3" in window.banner.label.text()  # its one line, named
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()
