"""Switch cost of DAMI-style serving on a 4B-shaped pair (Qwen3-4B 2507 geometry, random weights).

For a machine with a GPU (not run in CI; ~2 min of device time on one large GPU):

    .venv/bin/python benchmarks/dami_gpu.py                     # cuda, bf16, 4B shape
    .venv/bin/python benchmarks/dami_gpu.py --device cpu --small # a quick check anywhere

Times an in-place delta swap, an exact rebuild, a bucket hit and a bucket miss (materialising θ(λ)
into a second resident model), and reports memory. Weights are random (no download), which does not
change any of these costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.dami.serve import BucketCache, InPlaceSwapper  # noqa: E402
from engine.dami.torch_runtime import load_interpolated  # noqa: E402


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, reps: int) -> float:
    sync(device)
    t = time.perf_counter()
    for r in range(reps):
        fn(r)
    sync(device)
    return (time.perf_counter() - t) / reps


def main() -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="a 2-layer, 256-wide model (a quick check)")
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    shape = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64, vocab_size=4096) if a.small else \
        dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
             num_key_value_heads=8, head_dim=128, vocab_size=151936)
    cfg = Qwen3Config(tie_word_embeddings=True, **shape)
    torch.manual_seed(0)
    t = time.perf_counter()
    with torch.device(a.device):
        mi = Qwen3ForCausalLM(cfg).to(dtype).eval()
    sd_i = {k: v.detach().clone() for k, v in mi.named_parameters()}
    sd_t = {k: v + 0.01 * torch.randn_like(v) for k, v in sd_i.items()}
    print(f"built a {sum(v.numel() for v in sd_i.values()) / 1e6:.1f} M-parameter pair on {a.device} ({dtype}) in "
          f"{time.perf_counter() - t:.1f} s")

    sw = InPlaceSwapper(mi, lambda: (sd_i, sd_t), 0.5, rebuild_every=10**9)
    swap = timed(lambda r: sw.set(0.625 if r % 2 == 0 else 0.5), a.device, a.reps)
    rebuild = timed(lambda r: sw.rebuild(0.5), a.device, max(1, a.reps // 2))

    with torch.device(a.device):
        spare = Qwen3ForCausalLM(cfg).to(dtype).eval()

    def build(lam):
        load_interpolated(spare, sd_i, sd_t, lam)
        return spare

    cache = BucketCache(build, capacity=1)
    miss = timed(lambda r: cache.get(0.25 + 0.25 * (r % 2)), a.device, a.reps)
    hit = timed(lambda r: cache.get(0.5), a.device, a.reps)
    model_bytes = sum(v.numel() * v.element_size() for v in sd_i.values())
    print("| switch | ms |\n|---|---|")
    for name, v in (("in-place swap (W += Δλ·D)", swap), ("exact rebuild", rebuild), ("bucket miss (materialise)", miss),
                    ("bucket hit", hit)):
        print(f"| {name} | {v * 1e3:.2f} |")
    print(f"\nmodel {model_bytes / 1e9:.2f} GB; delta {sw.delta_bytes() / 1e9:.2f} GB; swap strategy resident "
          f"{(model_bytes + sw.delta_bytes()) / 1e9:.2f} GB; bucket cache K=2 {2 * model_bytes / 1e9:.2f} GB")
    if a.device.startswith("cuda"):
        print(f"peak GPU memory in this run: {torch.cuda.max_memory_allocated() / 1e9:.1f} GB (both checkpoints resident)")


if __name__ == "__main__":
    main()
