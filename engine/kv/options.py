"""``KVOptions``: every knob of the torch KV caches, one dataclass (the ``[backend.kv]`` settings section).

Every field is a user setting (``engine.options.setting``); defaults are the shipped ones, and
docs/kv_cache.md has the measurements behind them. ``0`` / ``""`` / ``"auto"`` means "the cache kind's
own default", written out in each field's description. Importing this module costs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from engine.options import setting


@dataclass
class KVOptions:
    # full
    growable: bool = setting(True, "full cache: grow buffers in place (off: transformers' DynamicCache, "
                                   "one torch.cat per token)")
    fast_attention: bool = setting(True, "full cache: packed causal attention (off: transformers' stock SDPA)")
    # KIVI quantization: the quantized cache and tailor's dense layers
    bits: int = setting(0, "KIVI bits 1, 2, 4, 8 or 16 = unquantized (0 = 4 for tailor, 2 for quantized)",
                        ge=0, le=16)
    group: int = setting(64, "values per quantization group", ge=1)
    residual: int = setting(128, "most recent tokens kept unquantized in a KIVI layer", ge=0)
    backend: Literal["kivi", "quanto"] = setting("kivi", "quantized cache: kivi (built in) | quanto "
                                                          "(optimum-quanto, when installed)")
    # sink and tailor's sparse layers
    sinks: int = setting(8, "first tokens always attended (sink, tailor)", ge=0)
    window: int = setting(0, "recent tokens always attended (0 = 120 for tailor, 248 for sink)", ge=0)
    # tailor's sparse layers
    top_k: int = setting(512, "tailor: rows a decoded token fetches per sparse layer (0 = 512)", ge=0)
    chunk_top_k: int = setting(0, "tailor: rows a multi-token chunk fetches (0 = 4 x top_k)", ge=0)
    rerank: int = setting(4, "tailor: the sketch shortlists rerank x top_k rows, exact keys pick top_k "
                             "(1 = sketch only)", ge=1)
    score_queries: int = setting(64, "tailor: at most this many chunk tokens score the rows", ge=1)
    channels: int = setting(8, "tailor: key channels the sketch scores per kv head", ge=1)
    sketch_bits: int = setting(2, "tailor: bits of the key sketch (16 = exact)", ge=1, le=16)
    store_bits: int = setting(0, "tailor: offload store rows 8 or 16 bits (0 = 8 on a CPU-only run of a lossy "
                                 "cache, else 16)", ge=0, le=16)
    offload_device: str = setting("", "tailor on a CPU run: device of the offload store (\"\" = beside the "
                                      "model; on CUDA it is always host memory)")
    plan: str = setting("", "tailor: layer-plan JSON (\"\" = the one beside the model, else the default plan)")
    # every lossy cache
    store_dtype: Literal["auto", "float16", "bfloat16", "model"] = setting(
        "auto", "dtype of windows, residuals and the store (auto = float16 under a 32-bit model when lossy)")

    @classmethod
    def of(cls, value: KVOptions | dict[str, Any] | None) -> KVOptions:
        """``value`` as KVOptions; a dict with an unknown key is one clear ``ValueError``."""
        if isinstance(value, KVOptions):
            return value
        raw = dict(value or {})
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown KV cache option(s): {', '.join(sorted(unknown))}")
        return cls(**raw)
