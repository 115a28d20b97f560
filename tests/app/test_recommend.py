"""app.models.recommend: the one preset recommendation (first run and model manager), on hardware profiles."""

from __future__ import annotations

import pytest

from app.models import GB, Hardware, _amdgpu, detect_hardware, estimate_vram, find_preset, recommend

NO_GPU_LAPTOP = Hardware("Intel Core i5", 8, 16 * GB)
BIG_CPU = Hardware("AMD EPYC", 32, 128 * GB)
RTX_4060TI_16 = Hardware("Ryzen 7", 16, 32 * GB, "NVIDIA GeForce RTX 4060 Ti", 16 * GB, "cuda")
GTX_1650 = Hardware("Core i5", 8, 16 * GB, "NVIDIA GeForce GTX 1650", 4 * GB, "cuda")
M2_16 = Hardware("Apple M2", 8, 16 * GB, "Apple Silicon GPU", int(16 * GB * 2 / 3), "metal")
M1_8 = Hardware("Apple M1", 8, 8 * GB, "Apple Silicon GPU", int(8 * GB * 2 / 3), "metal")


def test_no_gpu_gets_lite_which_needs_no_download():
    r = recommend(NO_GPU_LAPTOP)
    assert r.preset.key == "smollm2-lite" and not r.needs_pull
    assert r.no_download.key == "smollm2-lite"
    assert r.settings == {"backend.name": "lite"}
    assert "no usable GPU" in r.reason


def test_16gb_gpu_gets_the_joyai_gguf_on_the_gpu():
    r = recommend(RTX_4060TI_16)
    assert r.preset.key == "joyai-gguf" and r.needs_pull
    assert r.settings["backend.name"] == "llamacpp" and r.settings["backend.llamacpp.n_gpu_layers"] == -1
    assert r.no_download.key == "smollm2-lite"
    assert "RTX 4060 Ti" in r.reason


@pytest.mark.parametrize("hw", [GTX_1650, M1_8])
def test_a_gpu_too_small_for_the_8b_model_falls_back_to_lite(hw):
    r = recommend(hw)
    assert r.preset.key == "smollm2-lite"
    assert "less than" in r.reason


def test_apple_silicon_with_16gb_unified_memory_gets_the_gguf():
    assert recommend(M2_16).preset.key == "joyai-gguf"


def test_threshold_is_the_vram_estimate_not_a_constant():
    joy = find_preset("joyai-gguf")
    need = estimate_vram(joy, kv_type="q8_0", n_ctx=16384).total
    just = Hardware("x", 8, 32 * GB, "GPU", need, "cuda")
    short = Hardware("x", 8, 32 * GB, "GPU", need - 1, "cuda")
    assert recommend(just).preset.key == "joyai-gguf"
    assert recommend(short).preset.key == "smollm2-lite"


def test_a_large_many_core_cpu_gets_the_gguf_on_the_cpu():
    r = recommend(BIG_CPU)
    assert r.preset.key == "joyai-gguf" and r.settings["backend.llamacpp.n_gpu_layers"] == 0
    # the same memory with too few cores stays on lite
    assert recommend(Hardware("x", 8, 128 * GB)).preset.key == "smollm2-lite"


def test_gpu_kind_without_memory_is_no_gpu():
    assert not Hardware("x", 8, 16 * GB, "GPU", 0, "cuda").has_gpu
    assert recommend(Hardware("x", 8, 16 * GB, "", 24 * GB, "")).preset.key == "smollm2-lite"


def test_detect_hardware_reads_this_machine():
    import os

    hw = detect_hardware()
    assert hw.cores >= 1 and hw.ram_bytes > 256 * 1024 * 1024
    assert hw.cores == (os.cpu_count() or hw.cores)
    assert "RAM" in hw.describe()


def test_amdgpu_vram_is_read_from_sysfs(tmp_path):
    f = tmp_path / "card1" / "device" / "mem_info_vram_total"
    f.parent.mkdir(parents=True)
    f.write_text(str(16 * GB) + "\n")
    assert _amdgpu(tmp_path) == ("AMD GPU", 16 * GB)
    assert _amdgpu(tmp_path / "missing") == ("", 0)


# --- CPU VLMs (issue 18) ---------------------------------------------------------------------------------------
def _measured(monkeypatch, **p95):
    """The presets with these 2-core p95 figures (seconds per tick) in place of the benchmark's."""
    import dataclasses

    import app.models as models

    monkeypatch.setattr(models, "PRESETS", tuple(
        dataclasses.replace(p, cpu_p95_s=p95.get(p.key.replace("-", "_").replace(".", "_"), 0.0))
        for p in models.PRESETS))


def test_cpu_vlm_presets_pull_one_quant_and_its_projector():
    from app.models import CPU_VLMS

    for key in CPU_VLMS:
        p = find_preset(key)
        assert p.backend == "llamacpp" and any(a.startswith("mmproj") for a in p.allow)
        assert any(a.endswith(("Q8_0.gguf", "Q4_K_M.gguf")) for a in p.allow)
    int4 = find_preset("jdopensource/JoyAI-VL-Interaction-INT4")
    assert int4.backend == "torch" and int4.prequantized
    # already 4-bit on disk: the estimate's weights are the download, not 2 bytes a parameter
    assert estimate_vram(int4).weights == int(int4.download_gb * GB) < estimate_vram(find_preset("joyai")).weights


def test_no_gpu_gets_the_largest_measured_cpu_vlm_that_keeps_up(monkeypatch):
    _measured(monkeypatch, smolvlm2_256m=1.6, smolvlm2_500m=3.0)
    two_cores = recommend(Hardware("x", 2, 8 * GB))  # 256M: 1.6 s → a decision every 2 s; 500M: 3 s, too slow
    assert two_cores.preset.key == "smolvlm2-256m" and two_cores.settings["backend.tick_s"] == 2
    assert two_cores.settings["backend.name"] == "llamacpp" and two_cores.no_download.key == "smollm2-lite"
    assert "2 s" in two_cores.reason
    four = recommend(Hardware("x", 4, 8 * GB))  # 500M spread over 4 cores: 1.5 s
    assert four.preset.key == "smolvlm2-500m" and four.settings["backend.tick_s"] == 2
    eight = recommend(Hardware("x", 8, 8 * GB))  # 0.75 s: every second
    assert eight.preset.key == "smolvlm2-500m" and eight.settings["backend.tick_s"] == 1


def test_a_cpu_vlm_must_fit_in_half_the_ram_and_a_gpu_machine_keeps_its_rule(monkeypatch):
    _measured(monkeypatch, smolvlm2_256m=0.5)
    assert recommend(Hardware("x", 8, 1 * GB)).preset.key == "smollm2-lite"  # 0.5 GB free is too little
    assert recommend(Hardware("x", 8, 4 * GB)).preset.key == "smolvlm2-256m"
    assert recommend(GTX_1650).preset.key == "smollm2-lite"  # a GPU too small for the 8B model: unchanged


def test_unmeasured_cpu_vlms_are_never_recommended(monkeypatch):
    _measured(monkeypatch)
    assert recommend(Hardware("x", 64, 8 * GB)).preset.key == "smollm2-lite"
