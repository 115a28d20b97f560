"""The transcript: responses (streamed while generated), typed queries, spoken utterances, delegate
bubbles with status and result, summaries and errors. Searchable; ``jump_to(t)`` selects the entry
nearest a second (the timeline's click)."""

from __future__ import annotations

import bisect

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from engine.events import EventType
from ui.timeline import hms

T_ROLE = Qt.ItemDataRole.UserRole
KIND_ROLE = Qt.ItemDataRole.UserRole + 1
STYLE = {
    "response": ("▶", "#2ecc71"), "delegate": ("⇢", "#a66bd3"), "query": ("❯", "#5dade2"),
    "utterance": ("🎙", "#5dade2"), "summary": ("≡", "#c9a227"), "error": ("⚠", "#e74c3c"),
    "live": ("…", "#9aa0a6"), "delegate_result": ("⇠", "#a66bd3"),
}


class TranscriptView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.search = QLineEdit(placeholderText="Search the transcript…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.apply_filter)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(False)
        self.count_label = QLabel("")
        lay.addWidget(self.search)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.count_label)
        self._times: list[float] = []  # t of each item, in order (stream time is monotonic)
        self._live: QListWidgetItem | None = None
        self._delegates: list[QListWidgetItem] = []

    # --- entries ---
    def _add(self, t: float, kind: str, text: str) -> QListWidgetItem:
        icon, color = STYLE.get(kind, ("·", "#c9ccd1"))
        item = QListWidgetItem(f"{hms(t)}  {icon}  {text}")
        item.setData(T_ROLE, float(t))
        item.setData(KIND_ROLE, kind)
        item.setForeground(QBrush(QColor(color)))
        q = self.search.text().strip().lower()
        self.list.addItem(item)
        item.setHidden(bool(q) and q not in text.lower())
        self._times.append(float(t))
        at_end = self.list.verticalScrollBar().value() >= self.list.verticalScrollBar().maximum() - 4
        if at_end:
            self.list.scrollToBottom()
        return item

    def _drop_live(self) -> None:
        if self._live is not None:
            row = self.list.row(self._live)
            self.list.takeItem(row)
            self._times.pop(row)
            self._live = None

    def add_event(self, ev: dict) -> None:
        typ, t = ev.get("type"), float(ev.get("t", 0))
        if typ == "_delta":
            text = str(ev.get("raw", "")).replace("</response>", "").replace("</silence>", "").strip()
            if not text:
                return
            if self._live is None:
                self._live = self._add(t, "live", text)
            else:
                self._live.setText(f"{hms(t)}  …  {text}")
            return
        if typ == EventType.DECISION:
            self._drop_live()
            action = ev.get("action")
            if action == "response" and ev.get("text"):
                self._add(t, "response", ev["text"])
            elif action == "delegate":
                item = self._add(t, "delegate", f"{ev.get('text', '')}  — asked the brain: "
                                                f"{ev.get('delegate_query', '')}  [running]")
                self._delegates.append(item)
        elif typ == EventType.QUERY:
            self._add(t, "query", ev.get("text", ""))
        elif typ == EventType.UTTERANCE:
            self._add(t, "utterance", ev.get("text", ""))
        elif typ in (EventType.DELEGATE_RESULT, EventType.DELEGATE_ERROR):
            ok = typ == EventType.DELEGATE_RESULT
            if self._delegates:
                item = self._delegates.pop(0)
                item.setText(item.text().replace("[running]", "[done]" if ok else "[failed]"))
            if ok:
                body = str(ev.get("result") or ev.get("text") or "")
                if ev.get("lam") is not None:  # a DAMI brain says how hard it thought
                    body += f"  (λ {float(ev['lam']):.2f} · {ev.get('answer_tokens', '?')} tok)"
            else:
                body = str(ev.get("message", ev.get("error", "")))
                if ev.get("query"):  # the question is shown, never silently dropped
                    body += f" — the question was: “{ev['query']}”"
            self._add(t, "delegate_result" if ok else "error", body)
        elif typ == EventType.SUMMARY:
            self._add(t, "summary", f"({ev.get('kind', '')}) {ev.get('summary', '')}")
        elif typ == EventType.ERROR:
            self._add(t, "error", ev.get("message", ""))
        self.count_label.setText(f"{self.list.count()} entries")

    # --- search / navigation ---
    def apply_filter(self, text: str) -> None:
        q = text.strip().lower()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(q) and q not in item.text().lower())

    def texts(self, kind: str | None = None) -> list[str]:
        out = []
        for i in range(self.list.count()):
            item = self.list.item(i)
            if kind is None or item.data(KIND_ROLE) == kind:
                out.append(item.text().split("  ", 2)[-1])
        return out

    def visible_count(self) -> int:
        return sum(not self.list.item(i).isHidden() for i in range(self.list.count()))

    def jump_to(self, t: float) -> QListWidgetItem | None:
        """Select the first entry at or after second t (else the last one before it)."""
        if not self._times:
            return None
        i = min(bisect.bisect_left(self._times, float(t)), len(self._times) - 1)
        item = self.list.item(i)
        self.list.setCurrentItem(item)
        self.list.scrollToItem(item, QListWidget.ScrollHint.PositionAtCenter)
        return item

    def clear(self) -> None:
        self.list.clear()
        self._times.clear()
        self._live = None
        self._delegates.clear()
