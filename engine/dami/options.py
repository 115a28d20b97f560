"""DamiOptions: every knob of the ``dami`` brain, with its default and a one-line doc."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from engine.options import setting, setting_meta

# Declared here, not beside the torch code that uses them: the settings schema imports this file, and the
# app must not load torch to read its settings.
MODULES = ("attn", "mlp", "embed", "norm")  # the module-mask vocabulary; anything else is "other"
BUCKETS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.625, 0.75, 1.0)  # λ values served, dense around 0.4–0.6


@dataclass
class DamiOptions:
    instruct: str = setting(
        "", "Instruct checkpoint: a transformers directory or a .gguf file (resolve presets first)")
    thinking: str = setting(
        "", "Thinking checkpoint of the same architecture and tokenizer, same form as `instruct`")
    lam_mode: Literal["auto", "fixed"] = setting("auto", "auto (λ(q) per question) | fixed (always `lam`)")
    lam: float = setting(
        0.5, "λ when lam_mode = fixed (0 = Instruct, 1 = Thinking); snapped to `buckets`", ge=0.0, le=1.0)
    estimator: Literal["conf", "pref"] = setting(
        "conf", "auto mode: conf (zero-shot, confidence + discrepancy) | pref (trained, torch only)")
    estimator_path: str = setting("", "the trained estimator file (PrefEstimator.save) for estimator = pref")
    buckets: tuple[float, ...] = setting(
        lambda: BUCKETS, "the λ values served; dense around the 0.4–0.6 transition")
    u_lo: float = setting(
        0.05, "zero-shot: uncertainty at or below this → λ = 0 (calibrate on your questions)", ge=0.0, le=1.0)
    u_hi: float = setting(0.6, "zero-shot: uncertainty at or above this → λ = 1", ge=0.0, le=1.0)
    gamma: float = setting(
        1.0, "zero-shot: weight of the Instruct/Thinking discrepancy in the uncertainty", ge=0.0)
    probe_tokens: int = setting(16, "zero-shot: length of the direct-answer probe", ge=1)
    strategy: Literal["swap", "buckets"] = setting(
        "swap", "torch: swap (one resident model, in-place delta) | buckets (LRU of K models)")
    cache_size: int = setting(2, "K: materialised λ buckets kept resident (buckets strategy and GGUF)", ge=1)
    rebuild_every: int = setting(
        8, "swap strategy: exact rebuild from the checkpoints after this many delta swaps", ge=1)
    thinking_from: float = setting(0.5, "the Thinking chat template is used from this λ up", ge=0.0, le=1.0)
    module_mask: tuple[str, ...] = setting(
        lambda: (), "interpolate only these of attn, mlp, embed, norm (empty = all)")
    max_new_tokens: int = setting(2048, "generation cap per answer (thinking included)", ge=1)
    device: str = setting("auto", "torch: auto | cpu | cuda")
    dtype: str = setting("auto", "torch: auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16")
    cache_dir: str = setting("", "GGUF: where merged bucket files go (\"\" = ~/.cache/presence/dami)")
    n_ctx: int = setting(8192, "GGUF: context of each llama.cpp bucket", ge=256)
    threads: int = setting(0, "GGUF: llama.cpp threads (0 = half the cores)", ge=0)

    def validate(self) -> None:
        """One ValueError line for the first bad field."""
        if not self.instruct or not self.thinking:
            raise ValueError("dami brain needs both an instruct and a thinking model")
        if self.instruct.endswith(".gguf") != self.thinking.endswith(".gguf"):
            raise ValueError("dami brain: instruct and thinking must both be GGUF files or both transformers directories")
        checks = [
            (self.lam_mode in ("auto", "fixed"), f"lam_mode must be auto or fixed, not {self.lam_mode!r}"),
            (0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], not {self.lam}"),
            (self.estimator in ("conf", "pref"), f"estimator must be conf or pref, not {self.estimator!r}"),
            (self.estimator != "pref" or self.lam_mode == "fixed" or bool(self.estimator_path),
             "estimator = pref needs estimator_path"),
            (bool(self.buckets) and all(0.0 <= b <= 1.0 for b in self.buckets), "buckets must be λ values in [0, 1]"),
            (self.u_hi > self.u_lo, "u_hi must be above u_lo"),
            (self.strategy in ("swap", "buckets"), f"strategy must be swap or buckets, not {self.strategy!r}"),
            (self.cache_size >= 1, "cache_size must be at least 1"),
            (set(self.module_mask) <= set(MODULES), f"module_mask: choose from {', '.join(MODULES)}"),
            (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"dami brain: {msg}")

    @property
    def gguf(self) -> bool:
        return self.instruct.endswith(".gguf")

    @classmethod
    def docs(cls) -> dict[str, str]:
        """field → its one-line doc (for a settings dialog): the settings schema's declarations."""
        return {f.name: setting_meta(f).doc for f in fields(cls) if setting_meta(f) is not None}
