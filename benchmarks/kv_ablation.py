"""Perplexity of cache variants at one prefix length, side by side (for tuning TailorKV's options).

Each positional argument is a cache spec ``kind:option=value,...`` handed to ``engine.kv.make_cache``
(``full`` is transformers' DynamicCache), e.g.::

    python benchmarks/kv_ablation.py full tailor: "tailor:bits=2" "tailor:top_k=1024,rerank=1" \
        "tailor:bits=16,top_k=100000" "tailor:plan=0"      # plan=0+1: those layers quantized

All specs run as rows of one batch over the same tokens (``RowSplitCache``), on the model and text of
``benchmarks/kv_cache.py``: the prefix is fed in chunks, then ``--cont`` tokens are scored one by one.
Prints each spec's perplexity and its difference from the first spec.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_spec(spec: str) -> tuple[str, dict]:
    kind, _, rest = spec.partition(":")
    options: dict = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"bad option {item!r} in {spec!r} (expected key=value)")
        if key == "plan":
            options["plan"] = {"quantized_layers": [int(i) for i in value.split("+") if i]}
        else:
            options[key] = int(value) if value.lstrip("-").isdigit() else value
    return kind, options


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", help="cache specs; the first is the reference")
    ap.add_argument("--length", type=int, default=8192, help="prefix tokens before the scored continuation")
    ap.add_argument("--cont", type=int, default=128, help="tokens scored one by one after the prefix")
    ap.add_argument("--chunk", type=int, default=256, help="prefix chunk size (a frame's tokens)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    import kv_cache as bench

    import engine.kv as kv
    from engine.kv.plan import LayerPlan, plan_path_for
    from engine.kv.rows import RowSplitCache
    from engine.kv.text import long_text

    model, tok, gguf = bench.load_model()
    model.set_attn_implementation(kv.ATTN_IMPLEMENTATION)
    plan_file = plan_path_for(gguf)
    plan = LayerPlan.load(plan_file) if plan_file.is_file() else None
    specs = [parse_spec(s) for s in args.specs]
    caches = []
    for kind, options in specs:
        if kind == "full":
            from transformers import DynamicCache

            caches.append(DynamicCache(config=model.config))
        else:
            caches.append(kv.make_cache(kind, model.config, "cpu", {"plan": plan, **options} if plan else options))
    text, _ = long_text(250_000)
    tokens = tok(text, return_tensors="pt").input_ids
    if tokens.shape[1] < args.length + args.cont:
        raise SystemExit(f"text too short: {tokens.shape[1]} tokens")
    split, n, t0 = RowSplitCache(caches), len(caches), time.perf_counter()
    with torch.no_grad():
        logits = bench.feed(model, split, tokens[:, : args.length].expand(n, -1), args.chunk)
        nll = []
        for i in range(args.length, args.length + args.cont):
            nll.append(torch.nn.functional.cross_entropy(logits.float(), tokens[:, i].expand(n), reduction="none"))
            logits = model(input_ids=tokens[:, i: i + 1].expand(n, -1), cache=split, use_cache=True).logits[:, -1]
    ppl = torch.stack(nll).mean(0).exp().tolist()
    print(f"# PPL of {args.cont} tokens after {args.length} (chunks of {args.chunk}); plan "
          f"{plan.quantized_layers if plan else 'default'}; {time.perf_counter() - t0:.0f} s")
    for spec, p in zip(args.specs, ppl, strict=True):
        print(f"{p:9.3f} {p - ppl[0]:+.3f}  {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
