"""The one real Instruct/Thinking pair users can pull, and what serving it costs in memory.

Plain data for the model manager (app/models.py owns pulling; this module does not download). Sizes
are from the models' configs: Qwen3-4B (2507) has 4.02 B parameters (tied embeddings), 36 layers,
8 KV heads of 128; bf16 weights are 8.04 GB and a Q8_0 GGUF 4.27 GB (8.5 bits per weight). The GGUF
repositories are community conversions (unsloth); their file names were not checked from here (no
network), hence the ``*Q8_0.gguf`` pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
PARAMS = 4.02e9
KV_BYTES_PER_TOKEN = 2 * 36 * 8 * 128 * 2  # K and V, 36 layers, 8 heads × 128, bf16/f16: 144 KiB


@dataclass(frozen=True)
class PairPreset:
    key: str
    instruct_repo: str
    thinking_repo: str
    form: str  # transformers | gguf
    allow: tuple[str, ...]  # file patterns to pull from each repository
    bytes_per_model: float
    note: str


PAIR_PRESETS = (
    PairPreset("qwen3-4b-2507-dami", "Qwen/Qwen3-4B-Instruct-2507", "Qwen/Qwen3-4B-Thinking-2507", "transformers",
               ("*.json", "*.safetensors", "*.txt", "*.jinja"), PARAMS * 2,
               "bf16 safetensors, 8.0 GB each; GPU recommended (swap strategy ≈ 16.1 GB weights + KV + 0.6 GB)"),
    PairPreset("qwen3-4b-2507-dami-gguf", "unsloth/Qwen3-4B-Instruct-2507-GGUF", "unsloth/Qwen3-4B-Thinking-2507-GGUF",
               "gguf", ("*Q8_0.gguf",), PARAMS * 1.0625,
               "Q8_0, 4.3 GB each (mergeable: f16/bf16/q8_0 only, not K-quants); each in-between λ bucket "
               "is one more 4.3 GB file on disk"),
)


def memory_estimate(p: PairPreset, strategy: str = "swap", cache_size: int = 2, n_ctx: int = 16384) -> dict[str, float]:
    """Bytes resident while serving (weights, KV at ``n_ctx`` tokens, ~0.6 GB runtime) and extra disk.

    torch swap: the model plus its delta D = W_T − W_I, both in the model dtype (exact rebuilds read the
    memory-mapped checkpoints). torch buckets / GGUF: K materialised models, each with its own KV cache
    in GGUF. Disk: both inputs, plus (GGUF) one merged file per in-between bucket ever used (≤ 4 of the
    default six)."""
    w = p.bytes_per_model
    kv = KV_BYTES_PER_TOKEN * n_ctx
    if p.form == "transformers":
        weights = 2 * w if strategy == "swap" else cache_size * w
        kv_total = kv  # one answer at a time, fresh cache each
        disk = 2 * w
    else:
        weights = cache_size * w
        kv_total = cache_size * kv  # one llama.cpp context per resident bucket
        disk = 2 * w + 4 * w
    return {"weights": weights, "kv": kv_total, "overhead": 0.6 * GB, "total": weights + kv_total + 0.6 * GB,
            "disk": disk}
