"""The timeline over 12 hours: incremental cells, a lone response stays visible when zoomed out to
the whole session (the pyramid keeps the most important action per pixel), repaint cost is flat."""

from __future__ import annotations

import time

from ui.timeline import COLORS, RESPOND, SILENT, SKIPPED, TimelineWidget

TWELVE_H = 12 * 3600


def test_twelve_hours_lone_response_visible_when_fit(qtbot):
    tl = TimelineWidget()
    qtbot.addWidget(tl)
    tl.resize(1200, 80)
    tl.show()
    lone = 7 * 3600 + 123
    t0 = time.perf_counter()
    for t in range(TWELVE_H):
        if t == lone:
            tl.add_event({"type": "decision", "t": float(t), "action": "response", "text": "the lone reply",
                          "latency_ms": {"prefill": 20.0, "decide": 30.0, "total": 51.0}})
        else:
            tl.set_cell(t, SKIPPED if t % 1000 == 999 else SILENT)
    fill_s = time.perf_counter() - t0
    assert len(tl.codes()) == TWELVE_H and tl.codes()[lone] == RESPOND
    tl.follow = False
    tl.fit_all()
    t0 = time.perf_counter()
    img = tl.grab().toImage()
    paint_fit = time.perf_counter() - t0
    y = tl.AXIS_H + 5
    x = int((lone - tl.offset) * tl.zoom)
    row = [img.pixelColor(i, y) for i in range(max(0, x - 2), x + 3)]
    assert COLORS[RESPOND] in row  # one second out of 43,200, still drawn
    tl.set_zoom(8.0, anchor_x=0)
    tl.scroll_to(lone - 10)
    t0 = time.perf_counter()
    img = tl.grab().toImage()
    paint_zoomed = time.perf_counter() - t0
    assert img.pixelColor(int(10.5 * 8), y) == COLORS[RESPOND]
    tip = tl.tooltip_text(lone)
    assert "respond" in tip and "the lone reply" in tip and "prefill 20" in tip
    print(f"\n12 h timeline: {TWELVE_H} cells added in {fill_s:.2f} s "
          f"({fill_s / TWELVE_H * 1e6:.1f} µs/cell); repaint fit-all {paint_fit * 1000:.1f} ms, "
          f"zoomed {paint_zoomed * 1000:.1f} ms")


def test_delegate_span_closes_on_result(qtbot):
    tl = TimelineWidget()
    qtbot.addWidget(tl)
    tl.add_event({"type": "decision", "t": 3.0, "action": "delegate", "text": "checking", "delegate_query": "q"})
    for t in range(4, 9):
        tl.add_event({"type": "decision", "t": float(t), "action": "silence", "text": ""})
    assert tl.spans == [[3, None, "q", "running"]]
    tl.add_event({"type": "delegate_result", "t": 8.0, "result": "42"})
    assert tl.spans == [[3, 8, "q", "done"]]
    assert "delegate (done): q" in tl.tooltip_text(5)
