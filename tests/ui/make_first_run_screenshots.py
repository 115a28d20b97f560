"""Regenerate the first-run wizard's screenshots in assets/screenshots/ (not a test):

    QT_QPA_PLATFORM=offscreen python tests/ui/make_first_run_screenshots.py

The hardware page is shown twice, on two hardware profiles: a laptop without a GPU, and a 16 GB NVIDIA
card halfway through the one-click pull from a loopback hub. The voice page uses a stand-in voice, since
this machine has no microphone.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
OUT = ROOT / "assets" / "screenshots"


def main() -> int:
    import ui_hub
    from PySide6.QtWidgets import QApplication
    from test_first_run import LAPTOP, RTX16, FakeVoice
    from xvfb_app import wait

    from app.config import Settings
    from app.models import ModelStore
    from ui.first_run import FirstRunWizard

    tmp = Path(tempfile.mkdtemp())
    app = QApplication(sys.argv[:1])
    OUT.mkdir(parents=True, exist_ok=True)

    def shot(wiz, name):
        wait(app, lambda: False, 0.3)
        wiz.grab().save(str(OUT / name))

    mic = (True, "2 input device(s), e.g. Built-in Microphone")
    wiz = FirstRunWizard(Settings(), tmp / "a.toml", hardware=LAPTOP, store=ModelStore(cache_dir=tmp / "hub"),
                         voice=FakeVoice(), kind="macos", mic_probe=lambda: mic)
    wiz.show()
    shot(wiz, "first_run_1_hardware_cpu.png")
    wiz.next()
    shot(wiz, "first_run_2_permissions.png")
    wiz.next()
    wiz.voice_page.listen()
    wait(app, lambda: "Heard" in wiz.voice_page.status.text(), 10)
    shot(wiz, "first_run_3_voice.png")
    wiz.next()
    shot(wiz, "first_run_4_source.png")
    wiz.next()
    shot(wiz, "first_run_5_start.png")
    wiz.close()

    from huggingface_hub import constants

    H = ui_hub.load()
    constants.HF_HUB_OFFLINE = False
    constants.DOWNLOAD_CHUNK_SIZE = 65536
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    joy = H.HubRepo("Nasa1423/JoyAI-VL-Interaction-Preview-IQ4_NL-GGUF",
                    {"JoyAI-VL-Interaction-Preview-IQ4_NL.gguf": os.urandom(3 << 20), "mmproj-f16.gguf": b"GGUF" * 10})
    with H.HubServer([joy], throttle_s=0.02) as hub:
        wiz = FirstRunWizard(Settings(), tmp / "b.toml", hardware=RTX16,
                             store=ModelStore(cache_dir=tmp / "hub2", endpoint=hub.url), voice=FakeVoice(),
                             kind="windows", mic_probe=lambda: mic)
        wiz.show()
        wiz.hardware_page.pull()
        wait(app, lambda: 350 < wiz.hardware_page.progress.value() < 700, 60)
        shot(wiz, "first_run_1_hardware_gpu_pull.png")
        wait(app, lambda: not wiz.worker.busy(), 60)
    for p in sorted(OUT.glob("first_run_*.png")):
        print(p, p.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
