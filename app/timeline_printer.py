"""The headless terminal timeline: one line per second, as the window's timeline shows it."""

from __future__ import annotations

from typing import TextIO

from engine.events import EventType

_GLYPH = {"silence": "·", "response": "▶", "delegate": "⇢"}


class TimelinePrinter:
    def __init__(self, out: TextIO, show_silence: bool = True):
        self.out = out
        self.show_silence = show_silence

    def __call__(self, e: dict) -> None:
        t, typ = e["t"], e["type"]
        if typ == EventType.DECISION:
            action = e["action"]
            if action == "silence" and not self.show_silence:
                return
            lat = e.get("latency_ms", {}).get("total", 0.0)
            text = e.get("text", "")
            if action == "delegate":
                text += f"  → brain: {e.get('delegate_query', '')}"
            line = f"{int(t):>6}s {_GLYPH[action]} {action:<8} {lat:7.1f} ms  {text}".rstrip()
        elif typ == EventType.SKIPPED:
            line = f"{int(t):>6}s ✕ skipped  ({e.get('reason')})"
        elif typ in (EventType.QUERY, EventType.UTTERANCE):
            line = f"{int(t):>6}s ? {typ:<8} {e.get('text', '')}"
        elif typ in (EventType.DELEGATE_RESULT, EventType.DELEGATE_ERROR, EventType.SUMMARY, EventType.ERROR):
            body = e.get("result") or e.get("summary") or e.get("message") or ""
            line = f"{int(t):>6}s ! {typ:<8} {str(body)[:160]}"
        elif typ == EventType.SESSION_ENDED:
            line = (f"-- ended: {e.get('ticks')} ticks, {e.get('responses')} responses, "
                    f"{e.get('skipped')} skipped" + (f", error: {e['error']}" if e.get("error") else ""))
        else:
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass
