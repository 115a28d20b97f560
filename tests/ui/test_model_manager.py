"""The model manager dialog: nothing downloads until Pull is clicked; Pull shows progress and installs
from a real loopback hub; Delete frees the cache; Use sets the backend."""

from __future__ import annotations

import pytest
import ui_hub
from PySide6.QtCore import Qt

from app.models import ModelStore
from ui.model_manager import ModelManager

H = ui_hub.load()


@pytest.fixture
def online(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 65536)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


def test_pull_click_progress_install_use_delete(qtbot, tmp_path, online):
    with H.HubServer([H.REPO], throttle_s=0.005) as hub:
        store = ModelStore(cache_dir=tmp_path / "hub", endpoint=hub.url)
        dlg = ModelManager(store, confirm_delete=False)
        qtbot.addWidget(dlg)
        dlg.show()
        assert hub.log == []  # opening the manager never touches the network
        titles = [dlg.table.item(i, 0).text() for i in range(dlg.table.rowCount())]
        assert any("JoyAI" in t for t in titles) and any("Qwen3-VL" in t for t in titles)
        assert not dlg.pull_btn.isEnabled()  # nothing selected, nothing typed
        dlg.repo_edit.setText(H.REPO.repo_id)
        assert dlg.pull_btn.isEnabled()
        seen = []
        dlg.progress.valueChanged.connect(seen.append)
        qtbot.mouseClick(dlg.pull_btn, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not dlg.busy() and "Pull" in dlg.status.text() and "…" not in dlg.status.text(),
                        timeout=20000)
        assert "Pulled" in dlg.status.text(), dlg.status.text()
        dlg._drain()
    assert any(0 < v < 1000 for v in seen) and seen[-1] == 1000  # a moving bar, then full
    assert any(p.endswith("model.safetensors") for (_m, p, _r) in hub.log)
    dlg.select(H.REPO.repo_id)
    row = dlg.entries.index(dlg.selected())
    assert dlg.table.item(row, dlg.COLS.index("State")).text() == "installed"
    chosen = []
    dlg.modelChosen.connect(lambda b, m: chosen.append((b, m)))
    qtbot.mouseClick(dlg.use_btn, Qt.MouseButton.LeftButton)
    assert chosen and chosen[0][1].endswith(H.COMMIT)
    qtbot.mouseClick(dlg.delete_btn, Qt.MouseButton.LeftButton)
    assert "freed" in dlg.status.text()
    assert H.REPO.repo_id not in [e.repo_id for e in dlg.entries]


@pytest.mark.parametrize(("profile", "recommended", "joy_fit"), [
    ("none", "smollm2-lite", "needs a GPU"),
    ("gpu16", "joyai-gguf", "★ recommended"),
    ("gpu4", "smollm2-lite", "too big for this GPU"),
])
def test_the_manager_marks_what_fits_this_machine(qtbot, tmp_path, profile, recommended, joy_fit):
    """FAKE hardware profiles: the manager's marks come from app.models.recommend, the one function the
    first run uses too."""
    from app.models import Hardware, find_preset, recommend

    gib = 1 << 30
    hw = {"none": Hardware(cpu="x86", cores=4, ram_bytes=16 * gib),
          "gpu16": Hardware(cpu="x86", cores=8, ram_bytes=32 * gib, gpu_name="RTX 4080", vram_bytes=16 * gib,
                            gpu_kind="cuda"),
          "gpu4": Hardware(cpu="x86", cores=8, ram_bytes=32 * gib, gpu_name="GTX 1650", vram_bytes=4 * gib,
                           gpu_kind="cuda")}[profile]
    assert recommend(hw).preset.key == recommended
    dlg = ModelManager(ModelStore(cache_dir=tmp_path / "hub"), hardware=hw)
    qtbot.addWidget(dlg)
    col = dlg.COLS.index("This machine")
    marks = {e.preset.key: dlg.table.item(i, col).text() for i, e in enumerate(dlg.entries) if e.preset}
    assert marks[recommended] == "★ recommended"
    assert marks["joyai-gguf"].startswith(joy_fit)
    if profile == "none":  # a CPU VLM measured here shows RAM and its measured tick, not "needs a GPU"
        assert marks["smolvlm2-256m"].startswith("CPU: fits RAM") and "s a tick" in marks["smolvlm2-256m"]
    assert list(marks.values()).count("★ recommended") == 1
    assert find_preset(recommended).title in dlg.advice.text()
