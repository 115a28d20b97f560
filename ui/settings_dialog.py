"""The settings dialog over the settings schema (app.config via app.facade), saved atomically as TOML."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.facade import (
    PRESETS,
    ConfigError,
    Settings,
    estimate_vram,
    find_preset,
    gpu_memory_bytes,
    human,
    save_settings,
    schema_keys,
    validate,
)

# Names a person understands, with the internal name (what config.toml and --backend take) second.
BACKEND_NAMES = {
    "": "Automatic — the best one installed",
    "lite": "CPU lite — OCR + SmolLM2, no download (lite)",
    "heuristic": "No model — scene changes only (heuristic)",
    "torch": "Transformers VLM, GPU or CPU (torch)",
    "llamacpp": "GGUF model, laptop or consumer GPU (llamacpp)",
    "openai": "Remote server, OpenAI-compatible (openai)",
}
BRAIN_NAMES = {
    "": "None — no delegation",
    "openai": "OpenAI-compatible server (openai)",
    "llamacpp": "Local GGUF model (llamacpp)",
    "solve": "Solver HTTP endpoint (solve)",
    "echo": "Echo — a test brain (echo)",
    "dami": "DAMI pair — thinks as hard as the question needs (dami)",
}
FRAME_SIZES = [224, 336, 448, 560, 672, 896]  # square side; max_pixels = side²


def _combo(items: list[str], current: str) -> QComboBox:
    c = QComboBox()
    c.addItems(items)
    if current not in items:
        c.addItem(current)
    c.setCurrentText(current)
    return c


def _named_combo(names: dict[str, str], current: str) -> QComboBox:
    """Display names shown, internal names kept as item data (read back with ``currentData``)."""
    c = QComboBox()
    for key, label in names.items():
        c.addItem(label, key)
    if current not in names:
        c.addItem(current, current)
    c.setCurrentIndex(c.findData(current))
    return c


def _dspin(value: float, lo: float, hi: float, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(2)
    s.setValue(value)
    return s


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, path: str | Path | None = None, gpu_total: int | None = -1, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Presence settings")
        self.settings = settings
        self.path = path
        self.gpu_total = gpu_memory_bytes() if gpu_total == -1 else gpu_total
        s = settings
        tabs = QTabWidget()

        m = QFormLayout()
        self.backend = _named_combo(BACKEND_NAMES, s.backend.name)
        self.model = QLineEdit(s.backend.model, placeholderText="model dir, GGUF file or hub id (empty = default)")
        self.mmproj = QLineEdit(s.backend.mmproj)
        self.url = QLineEdit(s.backend.url, placeholderText="OpenAI-compatible server URL")
        self.kv_cache = _combo(["full", "tailor", "quantized", "sink"], s.backend.kv_cache)
        self.kv_type = _combo(["auto", "f16", "q8_0", "q4_0"], s.backend.kv_type)
        self.quant = _combo(["none", "8bit", "4bit"], s.backend.quantization)
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(2048, 262144)
        self.n_ctx.setSingleStep(4096)
        self.n_ctx.setValue(s.backend.n_ctx)
        self.estimate_for = QComboBox()
        self.estimate_for.addItems([p.key for p in PRESETS])
        guess = find_preset(s.backend.model) or find_preset("qwen3-vl-8b")
        self.estimate_for.setCurrentText(guess.key)
        self.vram = QLabel()
        self.vram.setWordWrap(True)
        for w in (self.kv_cache, self.kv_type, self.quant, self.estimate_for):
            w.currentTextChanged.connect(self.update_vram)
        self.n_ctx.valueChanged.connect(self.update_vram)
        m.addRow("Backend", self.backend)
        m.addRow("Model", self.model)
        m.addRow("Vision projector", self.mmproj)
        m.addRow("Server URL", self.url)
        m.addRow("KV cache (torch)", self.kv_cache)
        m.addRow("KV type (llama.cpp)", self.kv_type)
        m.addRow("Weight quantization", self.quant)
        m.addRow("Context tokens", self.n_ctx)
        m.addRow("VRAM estimate for", self.estimate_for)
        m.addRow("", self.vram)
        tabs.addTab(self._page(m), "Model")

        c = QFormLayout()
        side = int(round(s.capture.max_pixels ** 0.5))
        self.frame = _combo([f"{x}×{x}" for x in FRAME_SIZES], f"{side}×{side}")
        self.source = QLineEdit(s.capture.source, placeholderText="empty = the bundled demo clip")
        c.addRow("Frame size the model sees", self.frame)
        c.addRow("Default source", self.source)
        tabs.addTab(self._page(c), "Capture")

        t = QFormLayout()
        self.persona = QLineEdit(s.talk.persona, placeholderText="e.g. Speak only when something important happens")
        self.cooldown = _dspin(s.talk.cooldown_s, 0, 600, 1)
        self.dedup = _dspin(s.talk.dedup_threshold, 0, 1, 0.05)
        self.silence_bias = _dspin(s.talk.silence_bias, -10, 10, 0.5)
        self.force_silence = QCheckBox("Stay silent until the first instruction")
        self.force_silence.setChecked(s.talk.force_silence_until_query)
        t.addRow("Persona", self.persona)
        t.addRow("Cooldown (s)", self.cooldown)
        t.addRow("Dedup threshold", self.dedup)
        t.addRow("Silence bias", self.silence_bias)
        t.addRow("", self.force_silence)
        tabs.addTab(self._page(t), "Talkativeness")

        v = QFormLayout()
        self.speak = QCheckBox("Speak responses aloud")
        self.speak.setChecked(s.voice.speak)
        self.listen = QCheckBox("Listen to the microphone")
        self.listen.setChecked(s.voice.listen)
        self.voice = QLineEdit(s.voice.voice, placeholderText="Piper voice .onnx (empty = installed default)")
        v.addRow("", self.speak)
        v.addRow("", self.listen)
        v.addRow("Voice", self.voice)
        tabs.addTab(self._page(v), "Voice")

        b = QFormLayout()
        self.brain_kind = _named_combo(BRAIN_NAMES, s.brain.kind)
        self.brain_url = QLineEdit(s.brain.url, placeholderText="brain endpoint URL")
        self.brain_model = QLineEdit(s.brain.model)
        self.dami_instruct = QLineEdit(s.brain.dami.instruct, placeholderText="path or pair preset, e.g. qwen3-4b-2507-dami")
        self.dami_thinking = QLineEdit(s.brain.dami.thinking, placeholderText="path or the same pair preset")
        self.dami_mode = _combo(["auto", "fixed"], s.brain.dami.lam_mode)
        self.dami_lam = _dspin(s.brain.dami.lam, 0, 1, 0.125)
        b.addRow("Brain", self.brain_kind)
        b.addRow("Endpoint", self.brain_url)
        b.addRow("Model", self.brain_model)
        b.addRow("DAMI: Instruct model", self.dami_instruct)
        b.addRow("DAMI: Thinking model", self.dami_thinking)
        b.addRow("DAMI: reasoning depth λ", self.dami_mode)
        b.addRow("DAMI: fixed λ", self.dami_lam)
        tabs.addTab(self._page(b), "Brain")

        self.error = QLabel()
        self.error.setStyleSheet("color: #e74c3c")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(tabs)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.tabs = tabs
        self._explain()
        self.update_vram()

    def _explain(self) -> None:
        """Every field's tooltip is its setting's one-line description from the settings schema."""
        keys = schema_keys()
        fields = {
            self.backend: "backend.name", self.model: "backend.model", self.mmproj: "backend.mmproj",
            self.url: "backend.url", self.kv_cache: "backend.kv_cache", self.kv_type: "backend.kv_type",
            self.quant: "backend.quantization", self.n_ctx: "backend.n_ctx", self.frame: "capture.max_pixels",
            self.source: "capture.source", self.persona: "talk.persona", self.cooldown: "talk.cooldown_s",
            self.dedup: "talk.dedup_threshold", self.silence_bias: "talk.silence_bias",
            self.force_silence: "talk.force_silence_until_query", self.speak: "voice.speak",
            self.listen: "voice.listen", self.voice: "voice.voice", self.brain_kind: "brain.kind",
            self.brain_url: "brain.url", self.brain_model: "brain.model",
            self.dami_instruct: "brain.dami.instruct", self.dami_thinking: "brain.dami.thinking",
            self.dami_mode: "brain.dami.lam_mode", self.dami_lam: "brain.dami.lam",
        }
        for widget, path in fields.items():
            widget.setToolTip(f"{keys[path].doc} [{path}]")
        self.estimate_for.setToolTip("Which model the memory estimate below is for")

    @staticmethod
    def _page(form: QFormLayout) -> QWidget:
        w = QWidget()
        w.setLayout(form)
        return w

    def update_vram(self) -> None:
        preset = find_preset(self.estimate_for.currentText())
        kv = self.kv_type.currentText() if preset.backend in ("llamacpp", "lite") else self.kv_cache.currentText()
        est = estimate_vram(preset, self.quant.currentText(), kv, self.n_ctx.value())
        text = (f"{preset.title}: ≈ {human(est.total)} (weights {human(est.weights)}, KV {human(est.kv)}, "
                f"runtime {human(est.overhead)})")
        if self.gpu_total:
            fits = est.total <= self.gpu_total
            text += f" — GPU has {human(self.gpu_total)}: " + ("fits" if fits else "does NOT fit")
        else:
            text += " — no GPU found (CPU / lite mode)"
        self.vram.setText(text)

    def apply(self) -> Settings:
        s = self.settings
        s.backend.name = self.backend.currentData()
        s.backend.model = self.model.text().strip()
        s.backend.mmproj = self.mmproj.text().strip()
        s.backend.url = self.url.text().strip()
        s.backend.kv_cache = self.kv_cache.currentText()
        s.backend.kv_type = self.kv_type.currentText()
        s.backend.quantization = self.quant.currentText()
        s.backend.n_ctx = self.n_ctx.value()
        side = int(self.frame.currentText().split("×")[0])
        s.capture.max_pixels = side * side
        s.capture.source = self.source.text().strip()
        s.talk.persona = self.persona.text()
        s.talk.cooldown_s = self.cooldown.value()
        s.talk.dedup_threshold = self.dedup.value()
        s.talk.silence_bias = self.silence_bias.value()
        s.talk.force_silence_until_query = self.force_silence.isChecked()
        s.voice.speak = self.speak.isChecked()
        s.voice.listen = self.listen.isChecked()
        s.voice.voice = self.voice.text().strip()
        s.brain.kind = self.brain_kind.currentData()
        s.brain.url = self.brain_url.text().strip()
        s.brain.model = self.brain_model.text().strip()
        s.brain.dami.instruct = self.dami_instruct.text().strip()
        s.brain.dami.thinking = self.dami_thinking.text().strip()
        s.brain.dami.lam_mode = self.dami_mode.currentText()
        s.brain.dami.lam = self.dami_lam.value()
        return s

    def accept(self) -> None:
        try:
            validate(self.apply())
            save_settings(self.settings, self.path)
        except (ConfigError, OSError) as exc:
            self.error.setText(str(exc))
            return
        super().accept()
