"""Bytes per stored KV element, per cache type: one table for the llama.cpp backend and the VRAM estimate.

Importing this module costs nothing (no torch): the model manager reads it to estimate memory.
"""

from __future__ import annotations

# llama.cpp KV types: (ggml type id as in llama_cpp.GGML_TYPE_*, bytes per value incl. block scales).
GGML_KV: dict[str, tuple[int, float]] = {
    "f32": (0, 4.0), "f16": (1, 2.0), "q4_0": (2, 18 / 32), "q4_1": (3, 20 / 32),
    "q5_0": (6, 22 / 32), "q5_1": (7, 24 / 32), "q8_0": (8, 34 / 32),
}
# llama.cpp "auto" on a GPU build is q8_0 (gguf_sequence.AUTO_KV); a VRAM estimate is of GPU memory.
GGML_AUTO_GPU = "q8_0"

# torch caches (engine.kv.make_cache), bytes per element that stay on the model's device:
#   full       fp16/bf16 keys and values
#   quantized  KIVI 2-bit: 0.25 B + fp16 scale and zero per group of 64 → 0.3125
#   tailor     a 2-bit key sketch in the sparse layers, 4-bit KIVI in the few dense ones, fixed windows
#              (benchmarks/kv_cache.py: ~8x under fp16 at 8k tokens on SmolLM2 → ~0.25 B per element)
#   sink       fp16, but bounded by sinks + window: an estimate over n_ctx over-counts it
TORCH_KV: dict[str, float] = {"full": 2.0, "quantized": 0.3125, "tailor": 0.25, "sink": 2.0}


def bytes_per_element(kv: str) -> float:
    """Bytes per stored KV element for a llama.cpp KV type (``auto`` = the GPU choice) or a torch cache kind."""
    if kv in ("auto", ""):
        kv = GGML_AUTO_GPU
    if kv in GGML_KV:
        return GGML_KV[kv][1]
    return TORCH_KV.get(kv, 2.0)
