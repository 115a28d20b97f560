"""A dismissible strip for errors, warnings and offers; buttons are (label, callback) pairs."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

COLORS = {"error": "#5c1f1f", "info": "#1f3b5c", "warn": "#5c4a1f"}


class Banner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.lay = QHBoxLayout(self)
        self.lay.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.lay.addWidget(self.label, 1)
        self.buttons: list[QPushButton] = []
        self.kind = ""
        self.hide()

    def show_message(self, kind: str, text: str, actions: list[tuple[str, object]] = ()) -> None:
        self.setStyleSheet(f"Banner {{ background: {COLORS.get(kind, '#333')}; border-radius: 4px; }}"
                           "QLabel { color: white; }")
        self.kind = kind
        self.label.setText(text)
        for b in self.buttons:
            b.deleteLater()
        self.buttons = []
        for label, cb in [*actions, ("Dismiss", self.dismiss)]:
            b = QPushButton(label)
            b.clicked.connect(cb)
            self.lay.addWidget(b)
            self.buttons.append(b)
        self.show()

    def dismiss(self) -> None:
        self.kind = ""
        self.hide()
