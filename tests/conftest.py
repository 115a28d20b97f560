"""Shared fixtures: isolated config/data dirs, the tiny VLM GGUF pairs, generated clips."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "assets" / "demo"))
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Never read or write the developer's real settings or data."""
    base = tmp_path_factory.mktemp("presence-home")
    monkeypatch.setenv("PRESENCE_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("PRESENCE_DATA_DIR", str(base / "data"))
    monkeypatch.delenv("PRESENCE_CONFIG", raising=False)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny torch models on 2 shared cores: a second torch thread made their passes several times slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# The tiny VLM GGUF pairs by architecture: the shared test assets' file names.
SHARED_VLM_PAIRS = {
    "qwen2.5-vl": ("qwen25vl-tiny-f32.gguf", "qwen25vl-tiny-mmproj-f32.gguf"),
    "qwen3-vl": ("qwen3vl-tiny-f16.gguf", "qwen3vl-tiny-mmproj-f16.gguf"),
}


@pytest.fixture(scope="session")
def vlm_ggufs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Tiny random Qwen2.5-VL / Qwen3-VL GGUF pairs (model, mmproj): the shared test assets' when
    ``$PRESENCE_TEST_ASSETS`` is set, else converted here once per session from checkpoints built from
    config with llama.cpp's own converter (``make gguf-converter``), so a fresh clone runs the tests
    that need them instead of skipping."""
    p = os.environ.get("PRESENCE_TEST_ASSETS")
    if p and Path(p).is_dir() and all((Path(p) / m).is_file() for pair in SHARED_VLM_PAIRS.values() for m in pair):
        return {arch: (Path(p) / m, Path(p) / mm) for arch, (m, mm) in SHARED_VLM_PAIRS.items()}
    pytest.importorskip("transformers")
    from training.gguf import converter_dir

    if converter_dir() is None:
        pytest.skip("no tiny VLM GGUFs: $PRESENCE_TEST_ASSETS is unset and llama.cpp's converter is not "
                    "installed (`make gguf-converter`)")
    from tests.backends.family_models import gguf_pairs

    pairs = gguf_pairs(list(SHARED_VLM_PAIRS), tmp_path_factory.getbasetemp())
    return {arch: (model, mmproj) for arch, (model, mmproj, _why) in pairs.items()}


@pytest.fixture(scope="session")
def slides_clip(tmp_path_factory) -> Path:
    """A 60 s lecture clip: 6 slides, one change every 10 s (at 10, 20, 30, 40, 50)."""
    from make_demo_clip import write_slides

    return write_slides(tmp_path_factory.mktemp("clips") / "slides.mp4", seconds_per_slide=10.0, fps=5.0)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory) -> Path:
    """A 12 s clip (3 slides of 4 s) for quick session tests."""
    from make_demo_clip import SLIDES, write_slides

    return write_slides(tmp_path_factory.mktemp("clips") / "short.mp4", SLIDES[:3], seconds_per_slide=4.0, fps=5.0)
