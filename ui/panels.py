"""Small side panels: the memory panel (summaries as they appear) and the metrics bar."""

from __future__ import annotations

from collections import deque

from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from app.facade import human
from engine.events import EventType
from ui.timeline import hms


class MemoryPanel(QWidget):
    """Mid-term paragraphs and merged long-term blocks, newest last."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("<b>Memory</b> — nothing summarised yet")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        lay.addWidget(self.title)
        lay.addWidget(self.list, 1)
        self.counts = {"mid": 0, "long": 0}

    def add_event(self, ev: dict) -> None:
        if ev.get("type") != EventType.SUMMARY:
            return
        kind = str(ev.get("kind", "mid"))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        span = f"{hms(ev.get('start_t', 0))}–{hms(ev.get('end_t', ev.get('t', 0)))}"
        self.list.addItem(QListWidgetItem(f"[{kind} {span}] {ev.get('summary', '')}"))
        self.list.scrollToBottom()
        self.title.setText(f"<b>Memory</b> — {self.counts.get('mid', 0)} mid, {self.counts.get('long', 0)} long")

    def clear(self) -> None:
        self.list.clear()
        self.counts = {"mid": 0, "long": 0}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


class MetricsBar(QWidget):
    """Tick p50/p95 over the last 10 minutes, skipped seconds, context tokens, KV bytes, GPU memory.
    Events only update counters; the text is refreshed by the window's 1 s timer (``refresh``)."""

    WINDOW = 600

    def __init__(self, gpu_total: int | None = None, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        self.label = QLabel()
        lay.addWidget(self.label)
        lay.addStretch(1)
        self.gpu_total = gpu_total
        self.clear()

    def clear(self) -> None:
        self.latencies: deque[float] = deque(maxlen=self.WINDOW)
        self.decisions = 0
        self.skipped = 0
        self.context_tokens = 0
        self.kv_fast = 0
        self.kv_offload = 0
        self.refresh()

    def add_event(self, ev: dict) -> None:
        typ = ev.get("type")
        if typ == EventType.DECISION:
            self.decisions += 1
            self.latencies.append(float((ev.get("latency_ms") or {}).get("total", 0.0)))
            self.context_tokens = int((ev.get("tokens") or {}).get("context", 0))
            kv = ev.get("kv_bytes") or {}
            self.kv_fast, self.kv_offload = int(kv.get("fast", 0)), int(kv.get("offload", 0))
        elif typ == EventType.SKIPPED:
            self.skipped += 1

    def p50_p95(self) -> tuple[float, float]:
        lat = sorted(self.latencies)
        return percentile(lat, 0.5), percentile(lat, 0.95)

    def refresh(self) -> None:
        p50, p95 = self.p50_p95()
        parts = [f"tick p50 {p50:.0f} ms · p95 {p95:.0f} ms", f"decisions {self.decisions}",
                 f"skipped {self.skipped}", f"context {self.context_tokens:,} tok",
                 f"KV {human(self.kv_fast)}" + (f" + {human(self.kv_offload)} offload" if self.kv_offload else "")]
        if self.gpu_total:
            parts.append(f"GPU {human(self.gpu_total)}")
        self.label.setText("   │   ".join(parts))
