"""LoRA through peft for real checkpoints (the ``presence[train]`` extra)."""

from __future__ import annotations

from pathlib import Path

from training.config import LoraConfig


def wrap_lora(model, cfg: LoraConfig):
    """The model with LoRA adapters on ``cfg.targets`` of its language model; only they train."""
    try:
        from peft import LoraConfig as PeftLora
        from peft import get_peft_model
    except ImportError:
        raise RuntimeError("LoRA needs peft: pip install 'presence[train]'") from None
    # Only the language model's projections: the vision tower's share names (e.g. ``qkv``, ``proj``)
    # differ, and a regex keeps peft off them whatever they are called.
    pattern = r".*language_model.*\.(" + "|".join(cfg.targets) + r")$"
    peft_cfg = PeftLora(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=pattern,
                        bias="none")
    return get_peft_model(model, peft_cfg)


def save_lora(model, processor, run_dir: Path, cfg: LoraConfig) -> Path:
    """Merged HF checkpoint in ``run_dir/model`` (``merge``), else the adapter in ``run_dir/adapter``."""
    if cfg.merge:
        out = run_dir / "model"
        merged = model.merge_and_unload()
        merged.save_pretrained(out)
        processor.save_pretrained(out)
        return out
    out = run_dir / "adapter"
    model.save_pretrained(out)
    return out
