"""LoRA through peft: only the adapters train, the vision tower is untouched, and the merged
checkpoint loads in the torch backend unchanged."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_loading import load_model  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from training.config import LoraConfig  # noqa: E402
from training.lora import save_lora, wrap_lora  # noqa: E402


def test_lora_trains_adapters_only_and_merges_to_a_loadable_checkpoint(tiny25, tmp_path):
    loaded = load_model(str(tiny25), "cpu", "float32")
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    model = wrap_lora(loaded.model, LoraConfig(rank=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("visual" in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)  # a trained adapter: B starts at zero
    out = save_lora(model, loaded.processor, tmp_path, LoraConfig(rank=4, alpha=8))
    merged = load_model(str(out), "cpu", "float32").model.state_dict()
    changed = [k for k in before if "q_proj.weight" in k and not torch.equal(before[k], merged[k])]
    assert changed  # the adapter is in the merged weights
    assert all(torch.equal(before[k], merged[k]) for k in before if "visual" in k)
    b = TorchBackend()
    b.load(BackendConfig(model=str(out), device="cpu", dtype="float32", greedy=True))
    b.close()
