"""The first-run wizard (issue 22): hardware → recommended model (one-click pull) → permissions → voice
check → source → start. Skippable; re-openable from the menu; a second launch skips it.

Everything that touches the machine is injected (``hardware``, ``store``, ``voice``, ``kind``,
``mic_probe``), so tests walk the pages on fake hardware profiles with the real recommendation
(``app.models.recommend``) and a real pull from a loopback hub. Slow work (pull, speech, listening) runs
on a thread and reports through a queue drained by a timer, like the model manager.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from app.facade import (
    Hardware,
    ModelStore,
    Recommendation,
    Settings,
    build_info,
    detect_hardware,
    human,
    recommend,
    save_settings,
)
from ui.permissions import capture_guidance, session_kind

TEST_SENTENCE = "Hello, I am Presence. I will tell you when something on screen needs you."
SOURCES = (("", "The demo clip (lecture slides)"), ("screen", "The whole screen"), ("webcam", "The webcam"),
           ("file", "A video file…"), ("url", "A stream URL…"))


def should_show_first_run(settings: Settings) -> bool:
    return not getattr(settings.ui, "first_run_done", False)


def mark_first_run_done(settings: Settings, config_path: str | Path | None = None) -> Path:
    """Record that the wizard ran (finished or skipped) in the settings file."""
    settings.ui.first_run_done = True
    return save_settings(settings, config_path)


class _Worker:
    """One background job at a time; ``events`` is drained on the GUI thread."""

    def __init__(self):
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def run(self, tag: str, fn: Callable[[Callable[[object], None]], object]) -> bool:
        if self.busy():
            return False

        def work() -> None:
            try:
                self.events.put((tag, "done", fn(lambda p: self.events.put((tag, "progress", p)))))
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line on the page
                self.events.put((tag, "error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

        self.thread = threading.Thread(target=work, name=f"first-run-{tag}", daemon=True)
        self.thread.start()
        return True


# --- voice ---------------------------------------------------------------------------------------
class VoiceCheck:
    """The real voice check: Piper speaks through the output device; the microphone is recorded for a
    few seconds (its level reported per block) and Whisper transcribes what it heard."""

    def __init__(self, settings: Settings):
        self.v = settings.voice

    def speak(self, text: str) -> str:
        from plugins.audio import Playback, resolve_device
        from plugins.tts.piper import PiperTTS

        tts = PiperTTS(voice=self.v.voice, output_device=self.v.output_device, warm_up=False)
        out = Playback(tts.sample_rate, device=resolve_device(self.v.output_device, "output"))
        try:
            for chunk in tts.synthesize(text):
                out.feed(chunk)
            out.finish()
            out.wait()
        finally:
            out.close()
            tts.close()
        return f"spoke {tts.audio_s:.1f} s of audio"

    def listen(self, seconds: float, on_level: Callable[[float], None]) -> str:
        from plugins.asr.whisper import WhisperASR, WhisperOptions
        from plugins.audio import MicStream, resolve_device

        mic = MicStream(device=resolve_device(self.v.input_device, "input"))
        blocks: list[np.ndarray] = []
        try:
            while sum(len(b) for b in blocks) < seconds * mic.sample_rate:
                block = mic.read(timeout=0.5)
                if block is not None:
                    blocks.append(block)
                    on_level(float(np.sqrt(np.mean(block**2))))
        finally:
            mic.close()
        asr = WhisperASR(WhisperOptions(model=self.v.asr_model, language=self.v.language),
                         mic_factory=lambda *a, **k: None, warm_up=False)
        try:
            return asr.transcribe(np.concatenate(blocks))
        finally:
            asr.close()


def default_mic_probe() -> tuple[bool, str]:
    """(ok, fix) for the microphone."""
    try:
        from plugins.audio import list_devices

        devices = list_devices("input")
    except Exception as exc:  # noqa: BLE001 - no PortAudio is a finding, not a crash
        return False, f"{str(exc).splitlines()[0]}. Install PortAudio (Debian/Ubuntu: sudo apt install libportaudio2)."
    if not devices:
        return False, "No microphone found: plug one in (or start PulseAudio/PipeWire), then press Check again."
    return True, f"{len(devices)} input device(s), e.g. {devices[0].name}"


MIC_FIX = {
    "macos": "macOS asks once: allow Presence under System Settings → Privacy & Security → Microphone.",
    "windows": "Windows: Settings → Privacy & security → Microphone → let desktop apps access your microphone.",
}


# --- pages ---------------------------------------------------------------------------------------
class HardwarePage(QWizardPage):
    def __init__(self, hw: Hardware, rec: Recommendation, store: ModelStore, worker: _Worker):
        super().__init__()
        self.hw, self.rec, self.store, self.worker = hw, rec, store, worker
        self.setTitle("Your machine and the model for it")
        self.hw_label = QLabel(hw.describe())
        builds = build_info()
        self.build_label = QLabel("This build: " + " · ".join(f"{k} {v}" for k, v in builds.items()))
        self.rec_label = QLabel(f"<b>Recommended: {rec.preset.title}</b><br>{rec.reason}")
        self.rec_label.setWordWrap(True)
        self.choice = QButtonGroup(self)
        self.use_rec = QRadioButton(f"{rec.preset.title} (~{rec.preset.download_gb:.1f} GB download)"
                                    if rec.needs_pull else f"{rec.preset.title} (no download)")
        self.use_lite = QRadioButton(f"{rec.no_download.title} (no download)")
        self.choice.addButton(self.use_rec)
        self.choice.addButton(self.use_lite)
        self.use_rec.setChecked(True)
        self.use_lite.setVisible(rec.needs_pull)
        self.gpu_note = QLabel(self._gpu_note(builds))
        self.gpu_note.setWordWrap(True)
        self.pull_btn = QPushButton(f"Pull {rec.preset.title}")
        self.pull_btn.clicked.connect(self.pull)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        lay = QVBoxLayout(self)
        for w in (self.hw_label, self.build_label, self.rec_label, self.use_rec, self.use_lite, self.gpu_note):
            lay.addWidget(w)
        row = QHBoxLayout()
        row.addWidget(self.pull_btn)
        row.addWidget(self.progress, 1)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.refresh()
        if self.rec.needs_pull and self.installed():
            self.status.setText(f"{self.rec.preset.title} is installed.")

    def _gpu_note(self, builds: dict[str, str]) -> str:
        if not (self.rec.settings.get("backend.llamacpp.n_gpu_layers") == -1 and "CPU only" in builds.get("llama.cpp", "")):
            return ""
        return (f"This build of Presence runs llama.cpp on the CPU only. For your {self.hw.gpu_kind.upper()} GPU, get "
                f"the llama.cpp {self.hw.gpu_kind} pack from the release page and unpack it into the packs folder of "
                "Presence's data folder. Presence never downloads it by itself.")

    def installed(self) -> bool:
        return self.store.entry(self.rec.preset.repo_id).installed

    def refresh(self) -> None:
        done = not self.rec.needs_pull or self.installed()
        self.pull_btn.setVisible(self.rec.needs_pull)
        self.pull_btn.setEnabled(not done and not self.worker.busy())

    def pull(self) -> None:
        key = self.rec.preset.key
        if not self.worker.run("pull", lambda report: str(self.store.pull(key, on_progress=report))):
            return
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText(f"Pulling {self.rec.preset.title}…")
        self.pull_btn.setEnabled(False)

    def on_event(self, kind: str, payload) -> None:
        if kind == "progress":
            self.progress.setValue(int(payload.fraction * 1000))
            self.progress.setFormat(f"{payload.fraction * 100:.0f}%  {human(payload.done)} / {human(payload.total)}")
            return
        self.progress.hide()
        self.status.setText(f"Pulled into {payload}" if kind == "done" else f"Pull failed: {payload}")
        self.refresh()

    def chosen(self) -> Recommendation | None:
        """The recommendation to apply, or None for the lite default."""
        return self.rec if self.use_rec.isChecked() else None


class PermissionsPage(QWizardPage):
    def __init__(self, kind: str, mic_probe: Callable[[], tuple[bool, str]]):
        super().__init__()
        self.kind, self.mic_probe = kind, mic_probe
        self.setTitle("Permissions")
        self.setSubTitle("What the system must allow before Presence can watch and listen.")
        self.screen = QLabel()
        self.mic = QLabel()
        for w in (self.screen, self.mic):
            w.setWordWrap(True)
        again = QPushButton("Check again")
        again.clicked.connect(self.check)
        lay = QVBoxLayout(self)
        lay.addWidget(self.screen)
        lay.addWidget(self.mic)
        lay.addWidget(again)
        lay.addStretch(1)
        self.check()

    def check(self) -> None:
        fix = capture_guidance(self.kind)
        self.screen.setText("Screen capture: " + (fix or "OK, nothing to allow."))
        ok, detail = self.mic_probe()
        extra = MIC_FIX.get(self.kind, "")
        self.mic.setText("Microphone: " + ("OK, " if ok else "not available. ") + detail.rstrip(".") + "."
                         + (" " + extra if extra else ""))


class VoicePage(QWizardPage):
    LISTEN_S = 4.0

    def __init__(self, voice, worker: _Worker):
        super().__init__()
        self.voice, self.worker = voice, worker
        self.setTitle("Voice check")
        self.setSubTitle("Hear the voice, then say a short phrase. Optional: text always works without voice.")
        self.speak_btn = QPushButton("Speak a test sentence")
        self.listen_btn = QPushButton(f"Listen for {self.LISTEN_S:.0f} s and transcribe")
        self.speak_btn.clicked.connect(self.speak)
        self.listen_btn.clicked.connect(self.listen)
        self.level = QProgressBar()
        self.level.setRange(0, 100)
        self.level.setFormat("microphone level")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.heard = ""
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.speak_btn)
        row.addWidget(self.listen_btn)
        lay.addLayout(row)
        lay.addWidget(self.level)
        lay.addWidget(self.status)
        lay.addStretch(1)

    def speak(self) -> None:
        if self.worker.run("speak", lambda _report: self.voice.speak(TEST_SENTENCE)):
            self.status.setText("Speaking…")

    def listen(self) -> None:
        if self.worker.run("listen", lambda report: self.voice.listen(self.LISTEN_S, report)):
            self.status.setText("Listening… say a short phrase.")

    def on_event(self, tag: str, kind: str, payload) -> None:
        if kind == "progress":  # an RMS level in [0, 1]: show it on a dB scale from -60 dBFS
            db = 20 * np.log10(max(float(payload), 1e-6))
            self.level.setValue(int(max(0.0, min(100.0, (db + 60) / 60 * 100))))
        elif kind == "error":
            self.status.setText(f"Voice check failed: {payload}")
        elif tag == "speak":
            self.status.setText(f"Did you hear it? ({payload})")
        else:
            self.heard = str(payload)
            self.status.setText(f"Heard: “{self.heard}”" if self.heard else "Heard nothing: is the microphone muted?")


class SourcePage(QWizardPage):
    def __init__(self, current: str):
        super().__init__()
        self.setTitle("What should Presence watch?")
        self.group = QButtonGroup(self)
        self.edit = QLineEdit(placeholderText="video file path or rtsp:// / http(s):// URL")
        lay = QVBoxLayout(self)
        self.buttons: dict[str, QRadioButton] = {}
        for key, text in SOURCES:
            b = QRadioButton(text)
            self.group.addButton(b)
            self.buttons[key] = b
            lay.addWidget(b)
        lay.addWidget(self.edit)
        lay.addStretch(1)
        base = current.split(":")[0]
        if base in ("screen", "webcam"):
            self.buttons[base].setChecked(True)
        elif current:
            self.buttons["url" if "://" in current else "file"].setChecked(True)
            self.edit.setText(current)
        else:
            self.buttons[""].setChecked(True)

    def source(self) -> str:
        key = next(k for k, b in self.buttons.items() if b.isChecked())
        return self.edit.text().strip() if key in ("file", "url") else key


class StartPage(QWizardPage):
    def __init__(self):
        super().__init__()
        self.setTitle("Ready")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        QVBoxLayout(self).addWidget(self.summary)

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        wiz: FirstRunWizard = self.wizard()
        self.summary.setText(wiz.summary())


# --- the wizard ----------------------------------------------------------------------------------
class FirstRunWizard(QWizard):
    """``exec()`` it; on Finish (Start) or Skip the settings are updated and saved with
    ``ui.first_run_done = True``. ``started`` tells the caller whether to start watching now."""

    def __init__(self, settings: Settings, config_path: str | Path | None = None, *, hardware: Hardware | None = None,
                 store: ModelStore | None = None, voice=None, kind: str | None = None,
                 mic_probe: Callable[[], tuple[bool, str]] | None = None, parent=None):
        super().__init__(parent)
        self.settings, self.config_path = settings, config_path
        self.hw = hardware or detect_hardware()
        self.rec = recommend(self.hw)
        self.store = store or ModelStore()
        self.started = False
        self.saved_to: Path | None = None
        self.worker = _Worker()
        self.setWindowTitle("Welcome to Presence")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setButtonText(QWizard.WizardButton.CancelButton, "Skip setup")
        self.setButtonText(QWizard.WizardButton.FinishButton, "Start")
        self.hardware_page = HardwarePage(self.hw, self.rec, self.store, self.worker)
        self.permissions_page = PermissionsPage(kind or session_kind(), mic_probe or default_mic_probe)
        self.voice_page = VoicePage(voice or VoiceCheck(settings), self.worker)
        self.source_page = SourcePage(settings.capture.source)
        self.start_page = StartPage()
        for p in (self.hardware_page, self.permissions_page, self.voice_page, self.source_page, self.start_page):
            self.addPage(p)
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._drain)
        self._timer.start()
        self.resize(720, 480)

    def _drain(self) -> None:
        while True:
            try:
                tag, kind, payload = self.worker.events.get_nowait()
            except queue.Empty:
                return
            if tag == "pull":
                self.hardware_page.on_event(kind, payload)
            else:
                self.voice_page.on_event(tag, kind, payload)

    # --- what will be saved ---
    def backend_choice(self) -> tuple[dict[str, object], str]:
        """(settings by dotted path, a note). A chosen model that is not pulled yet falls back to lite."""
        rec = self.hardware_page.chosen()
        note = ""
        if rec is not None and rec.needs_pull:
            entry = self.store.entry(rec.preset.repo_id)
            if entry.installed:
                values = dict(rec.settings)
                ggufs = sorted(p for p in (entry.path or Path()).rglob("*.gguf") if "mmproj" not in p.name.lower())
                values["backend.model"] = str(ggufs[0]) if ggufs else str(entry.path or rec.preset.repo_id)
                return values, f"{rec.preset.title} ({values['backend.name']})"
            note = f" — {rec.preset.title} is not pulled yet: pull it later in the model manager"
        lite = self.store.entry(self.rec.no_download.repo_id).installed
        return ({"backend.name": self.rec.no_download.backend} if lite else {}), \
            (self.rec.no_download.title if lite else "heuristic baseline") + note

    def summary(self) -> str:
        _, model = self.backend_choice()
        src = self.source_page.source() or "the demo clip"
        voice = f"heard “{self.voice_page.heard}”" if self.voice_page.heard else "not checked"
        return (f"Model: {model}<br>Source: {src}<br>Voice: {voice}<br><br>Press Start to begin watching. "
                "This setup can be opened again from Help → First-run setup…")

    def apply(self) -> None:
        values, _ = self.backend_choice()
        for path, v in values.items():
            *parents, name = path.split(".")
            target = self.settings
            for part in parents:
                target = getattr(target, part)
            setattr(target, name, v)
        self.settings.capture.source = self.source_page.source()
        self.saved_to = mark_first_run_done(self.settings, self.config_path)

    def accept(self) -> None:
        self.apply()
        self.started = True
        super().accept()

    def reject(self) -> None:
        """Skip: nothing changes but the record that the wizard ran, so it does not come back uninvited."""
        self.saved_to = mark_first_run_done(self.settings, self.config_path)
        super().reject()
