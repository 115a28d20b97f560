"""Routes session events to the widgets that show them: timeline, transcript, memory panel, metrics,
banner. One place decides who sees what, so the widgets never look at each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.events import PER_SECOND, EventType
from ui.banner import Banner
from ui.panels import MemoryPanel, MetricsBar
from ui.timeline import TimelineWidget, hms
from ui.transcript import TranscriptView

TIMELINE_TYPES = frozenset({EventType.DECISION, EventType.SKIPPED, EventType.DELEGATE_RESULT, EventType.DELEGATE_ERROR})


@dataclass
class Views:
    timeline: TimelineWidget
    transcript: TranscriptView
    memory: MemoryPanel
    metrics: MetricsBar
    banner: Banner


class EventRouter:
    def __init__(self, views: Views, on_error_action: Callable[[], None]):
        self.v = views
        self.on_error_action = on_error_action
        self.events: list[dict] = []  # everything shown, in order (what Export writes)
        self.session_id = ""

    def clear(self) -> None:
        self.events.clear()
        self.session_id = ""
        for w in (self.v.timeline, self.v.transcript, self.v.memory, self.v.metrics):
            w.clear()

    def route(self, ev: dict) -> None:
        typ = ev.get("type")
        if typ != "_delta":
            self.events.append(ev)
        if typ in TIMELINE_TYPES:
            self.v.timeline.add_event(ev)
        if typ in PER_SECOND:
            self.v.metrics.add_event(ev)
        if typ == EventType.SUMMARY:
            self.v.memory.add_event(ev)
        if typ == EventType.SESSION_STARTED:
            self.session_id = ev.get("session", "")
        if typ == EventType.ERROR:
            self.v.banner.show_message("error", f"{ev.get('where', 'engine')} error at {hms(ev.get('t', 0))}: "
                                                f"{ev.get('message', '')}", [("Settings…", self.on_error_action)])
        self.v.transcript.add_event(ev)
