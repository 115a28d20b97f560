"""Streaming into the transcript: deltas show a live line that the final decision replaces; the pump
coalesces a burst of deltas into the newest one; delegate bubbles get their status and result."""

from __future__ import annotations

from ui.bridge import EventPump
from ui.transcript import TranscriptView


def test_streamed_deltas_then_decision(qtbot):
    view = TranscriptView()
    qtbot.addWidget(view)
    got = []

    def handler(ev):
        got.append(ev)
        view.add_event(ev)

    pump = EventPump(handler)
    for raw in ("</response> The", "</response> The slide", "</response> The slide changed"):
        pump.delta(4, raw)
    pump.drain()
    assert [e["raw"] for e in got] == ["</response> The slide changed"]  # coalesced
    assert view.texts("live") == ["The slide changed"]
    pump.put({"type": "decision", "t": 4.0, "action": "response", "text": "The slide changed."})
    pump.drain()
    assert view.texts("live") == [] and view.texts("response") == ["The slide changed."]
    pump.delta(5, "</silence>")
    pump.put({"type": "decision", "t": 5.0, "action": "silence", "text": ""})
    pump.drain()
    assert view.list.count() == 1  # silence leaves no trace
    pump.stop()


def test_delegate_bubble_gets_result(qtbot):
    view = TranscriptView()
    qtbot.addWidget(view)
    view.add_event({"type": "decision", "t": 2.0, "action": "delegate", "text": "Let me check.",
                    "delegate_query": "what is on slide 3?"})
    assert "[running]" in view.texts("delegate")[0]
    view.add_event({"type": "delegate_result", "t": 9.0, "result": "A chart of latency."})
    assert "[done]" in view.texts("delegate")[0]
    assert view.texts("delegate_result") == ["A chart of latency."]
    view.add_event({"type": "summary", "t": 200.0, "kind": "mid", "summary": "Slides 1-3."})
    view.search.setText("latency")
    assert view.visible_count() == 1
    assert view.jump_to(100).data(256) == 200.0
