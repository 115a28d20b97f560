"""File → Sessions…: the recorded sessions on this machine — open one, delete some, apply retention.

The same list and the same deletion as ``presence sessions`` / ``presence sessions rm`` (app.retention
through the facade). Deleting removes a session's events, screen text and search index for good, so it
asks first; the running session cannot be deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.facade import Controller, SessionInfo, human

COLUMNS = ("Started", "Source", "Backend", "Seconds", "Store size", "Session")


def ask_user(parent: QWidget, question: str) -> bool:
    return QMessageBox.question(parent, "Delete sessions", question) == QMessageBox.StandardButton.Yes


class SessionsDialog(QDialog):
    def __init__(self, controller: Controller, open_session: Callable[[str, str], object],
                 parent: QWidget | None = None, confirm: Callable[[QWidget, str], bool] = ask_user):
        super().__init__(parent)
        self.setWindowTitle("Recorded sessions")
        self.resize(820, 420)
        self.controller = controller
        self.open_session = open_session
        self.confirm = confirm
        self.sessions: list[SessionInfo] = []

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.retention_label = QLabel()
        self.retention_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)

        self.open_btn = QPushButton("Open", toolTip="Show the selected session read-only in the main window")
        self.delete_btn = QPushButton("Delete…", toolTip="Delete the selected sessions: events, screen text and "
                                      "search index (asks first)")
        self.retention_btn = QPushButton("Apply retention now", toolTip="Delete sessions older or larger than the "
                                         "[storage] keep_days / max_gb settings")
        self.open_btn.clicked.connect(self.open_selected)
        self.delete_btn.clicked.connect(self.delete_selected)
        self.retention_btn.clicked.connect(self.apply_retention)
        buttons = QHBoxLayout()
        for b in (self.open_btn, self.delete_btn, self.retention_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.retention_label)
        layout.addWidget(self.message)
        layout.addWidget(close)
        self.refresh()

    def refresh(self) -> None:
        self.sessions, warnings = self.controller.recorded_sessions()
        self.sessions.reverse()  # newest first
        self.table.setRowCount(len(self.sessions))
        for row, s in enumerate(self.sessions):
            cells = (s.started_wall[:19].replace("T", " "), s.source, s.backend, str(s.seconds), human(s.bytes),
                     s.session)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        st = self.controller.settings.storage
        rules = [f"older than {st.keep_days:g} days" if st.keep_days > 0 else "",
                 f"beyond {st.max_gb:g} GB in all (oldest first)" if st.max_gb > 0 else ""]
        rules = [r for r in rules if r]
        self.retention_label.setText(
            ("Sessions " + " and ".join(rules) + " are deleted when a session starts.") if rules else
            "Sessions are kept until you delete them (Settings → storage: keep_days, max_gb).")
        self.message.setText("\n".join(warnings) if warnings else f"{len(self.sessions)} session(s)")

    def selected(self) -> list[SessionInfo]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.sessions[r] for r in rows]

    def open_selected(self) -> None:
        chosen = self.selected()
        if chosen:
            self.open_session(str(chosen[0].store), chosen[0].session)
            self.accept()

    def delete_selected(self) -> None:
        chosen = self.selected()
        if not chosen:
            return
        names = ", ".join(s.session for s in chosen)
        if not self.confirm(self, f"Delete {len(chosen)} session(s) ({names}) for good? "
                            "Their events, screen text and search index are removed."):
            return
        try:
            out = self.controller.delete_sessions([s.session for s in chosen])
        except (OSError, sqlite3.Error) as exc:
            self.refresh()
            self.message.setText(f"Cannot delete: {exc}")
            return
        self.refresh()
        self.message.setText(f"Deleted {len(out.sessions)} session(s), {human(out.bytes_freed)} freed")

    def apply_retention(self) -> None:
        out = self.controller.apply_retention()
        self.refresh()
        self.message.setText(f"Retention deleted {len(out.sessions)} session(s), {human(out.bytes_freed)} freed"
                             if out.sessions else "Nothing to delete under the retention settings")
