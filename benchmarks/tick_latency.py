"""Per-tick latency over a simulated stream: the torch backend's incremental path vs the naive path.

    python benchmarks/tick_latency.py [--ticks 600] [--big-ticks 300] [--models tiny25,tiny3,big]
    python benchmarks/tick_latency.py --ticks 60            # quick development run
    python benchmarks/tick_latency.py --backend llamacpp|openai ...   # → benchmarks/tick_latency_gguf.py

(a) incremental: ``TorchBackend`` observe + decide + commit, prefilling only the new turn on one
live KV cache. (b) naive: what users write — ``model.generate()`` over the whole history (every
frame so far, every decision) each tick, same model, same token sequence, same decision length.
Both run in this process on the same weights. The naive path is timed on a few sampled ticks in the
first and last window (every tick of it late in a long stream would take minutes on a CPU).

Models (random weights, built in memory / a temp dir, offline): ``tiny25`` / ``tiny3`` = the tiny
Qwen2.5-VL / Qwen3-VL of tests/tiny_models.py; ``big`` = Qwen2.5-VL-3B text dimensions (hidden
2048, MLP 11008, 16 heads / 2 KV heads, head_dim 128) cut to ``--big-layers`` layers, with a tiny
vision tower and the tiny tokenizer's vocabulary (so the LM head does not dominate a CPU run).
Prints p50 / p95 per window, KV bytes, the naive/incremental ratio at the start and end, and whether
the incremental p50 is flat (last window within 1.2x of the first).

Where the growth comes from: every tick's time inside SDPA kernels (text attention over the cache,
plus the vision tower's constant share) is clocked separately, so the report splits the first→last
p50 growth into attention arithmetic and everything else. ``--kv full,sink`` adds a row per model
with a bounded cache (StreamingLLM sinks + recent window from ``engine.kv``; ``tailor`` also works):
attention then reads a fixed number of keys, so its tick should stay flat. The naive path is timed
once per model (its cost depends only on the token sequence, which the committed decisions fix)
and every cache row of that model is compared with it. The naive path runs on stock SDPA attention
(what users get from ``generate()``), the incremental one on the backend's own.

On a shared, loaded machine the first and last windows run minutes apart under different loads, so
each row also has an interleaved control: during the last window a second backend on the same
weights replays the stream's first ticks from a fresh chunk, one control tick right after each
stream tick; long vs short context at the same moments (``--no-control`` skips it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _frame(t: int, side: int) -> np.ndarray:
    """A stream frame: mostly static, with a moving block (so frames differ, as a screen does)."""
    rng = np.random.default_rng(t // 10)  # a "slide" changes every 10 s
    img = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    x = (t * 7) % max(1, side - 8)
    img[:8, x : x + 8] = 255
    return img


def _big_model(tiny_dir: Path, layers: int):
    """Random Qwen2.5-VL with 3B text dims, ``layers`` layers, built in memory (fp32)."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tiny = AutoConfig.from_pretrained(tiny_dir, local_files_only=True)
    t = tiny.text_config
    text = dict(vocab_size=t.vocab_size, hidden_size=2048, intermediate_size=11008, num_hidden_layers=layers,
                num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                bos_token_id=t.bos_token_id, eos_token_id=t.eos_token_id, pad_token_id=t.pad_token_id)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=2048, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                           image_token_id=tiny.image_token_id, video_token_id=tiny.video_token_id,
                           vision_start_token_id=tiny.vision_start_token_id,
                           vision_end_token_id=tiny.vision_end_token_id)
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


class SdpaClock:
    """Milliseconds spent inside ``F.scaled_dot_product_attention`` while active (every attention path
    here — stock SDPA, the backend's packed attention, engine.kv's caches — ends in that one kernel)."""

    def __init__(self) -> None:
        self.ms = 0.0
        self._orig = None

    def __enter__(self):
        import torch.nn.functional as F

        self._orig = orig = F.scaled_dot_product_attention

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                self.ms += (time.perf_counter() - t0) * 1000

        F.scaled_dot_product_attention = timed
        return self

    def __exit__(self, *exc) -> None:
        import torch.nn.functional as F

        F.scaled_dot_product_attention = self._orig


def _naive_tick(b, prompt: list[int], n_images: int, n_new: int) -> tuple[float, int]:
    """generate() over the whole history (all frames, all decisions) for ``n_new`` tokens: (ms, KV bytes).

    ``prompt`` is exactly what the incremental path sampled this tick's decision from.
    """
    import torch

    from engine.kv import attention, kv_bytes

    ids = torch.tensor([prompt], dtype=torch.long)  # [1, T]
    pv = torch.cat([p for p, _ in b.images[:n_images]])
    grid = torch.cat([g for _, g in b.images[:n_images]])
    n_new = max(1, n_new)
    impl = attention.text_impl(b.model)
    attention.use(b.model, "sdpa")  # what generate() users run: stock attention
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = b.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv,
                               image_grid_thw=grid, mm_token_type_ids=(ids == b.image_token_id).int(),
                               max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                               return_dict_in_generate=True)
    ms = (time.perf_counter() - t0) * 1000
    attention.use(b.model, impl)
    cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None)
    return ms, kv_bytes(cache).fast if cache is not None else 0


def _tick(b, t: int, side: int, max_tokens: int, want_prompt: bool = False) -> tuple[float, float, int, list | None]:
    """One stream second on backend ``b``: (ms, ms inside SDPA, decision tokens, prompt if wanted)."""
    from engine.context import Turn

    turn = Turn(t=t, pixels=_frame(t, side), query="tell me when the slide changes" if t == 3 else None)
    clock = SdpaClock()
    with clock:
        t0 = time.perf_counter()
        b.observe(turn)
        prompt = b.context_ids() if want_prompt else None  # (copy: only at the naive-sampled ticks)
        n0 = len(b.ids)
        raw = "".join(b.decide(max_tokens))
        n_dec = len(b.ids) - n0 + (1 if raw else 0)  # fed tokens + the last sampled one
        b.commit("</silence>" if t % 5 else "</response> the slide shows a chart")
        ms = (time.perf_counter() - t0) * 1000
    return ms, clock.ms, n_dec, prompt


def run_model(label: str, backend, ticks: int, window: int, side: int, max_tokens: int, naive_samples: int,
              naive: dict | None = None, control=None) -> dict:
    """One stream on ``backend``. ``naive``: {tick: (ms, KV bytes)} already measured for this model (timed
    here at the sampled ticks when None). ``control``: a second backend on the same model; during the
    last window it replays the stream's first ticks from a fresh chunk, one control tick right after
    each stream tick, so short- and long-context ticks are compared under the same machine load."""
    from engine.context import ChunkPrefix
    from engine.prompts import system_prompt

    prefix = ChunkPrefix(system=system_prompt("native", True), text="")
    b = backend
    b.start_chunk(prefix)
    # from each window's end backwards: one sample sits at the window's last tick (the costliest context)
    sample_at = set(np.linspace(window - 1, 0, naive_samples).astype(int).tolist())
    sample_at |= set(np.linspace(ticks - 1, ticks - window, naive_samples).astype(int).tolist())
    measure_naive = naive is None
    naive = {} if naive is None else naive
    inc, attn, kv_inc, dec_tokens, ctl, ctl_attn = [], [], [], [], [], []
    for t in range(ticks):
        ms, a_ms, n_dec, prompt = _tick(b, t, side, max_tokens, measure_naive and t in sample_at)
        inc.append(ms)
        attn.append(a_ms)
        kv_inc.append(b.stats().kv_bytes_fast)
        if control is not None and t >= ticks - window:
            if t == ticks - window:
                control.start_chunk(prefix)
            c_ms, c_attn, _, _ = _tick(control, t - (ticks - window), side, max_tokens)
            ctl.append(c_ms)
            ctl_attn.append(c_attn)
        dec_tokens.append(n_dec)
        if prompt is not None:  # the naive path: same prompt, same decision length
            naive[t] = _naive_tick(b, prompt, len(b.images), n_dec)
        if (t + 1) % max(1, ticks // 10) == 0:
            print(f"  [{label}] tick {t + 1}/{ticks}: incremental {inc[-1]:.1f} ms (attention {attn[-1]:.1f}), "
                  f"context {b.stats().tokens_context} tokens", flush=True)
    first, last = slice(0, window), slice(ticks - window, ticks)
    rest = [i - a for i, a in zip(inc, attn, strict=True)]
    n_first = [naive[t][0] for t in sorted(naive) if t < window]
    n_last = [naive[t][0] for t in sorted(naive) if t >= ticks - window]
    res = dict(label=label, ticks=ticks, window=window, context=b.stats().tokens_context,
               inc_first=(_pct(inc[first], 50), _pct(inc[first], 95)), inc_last=(_pct(inc[last], 50), _pct(inc[last], 95)),
               attn_first=_pct(attn[first], 50), attn_last=_pct(attn[last], 50),
               rest_first=_pct(rest[first], 50), rest_last=_pct(rest[last], 50),
               naive_first=(_pct(n_first, 50), _pct(n_first, 95)), naive_last=(_pct(n_last, 50), _pct(n_last, 95)),
               kv_inc_end=kv_inc[-1], kv_naive_end=naive[max(naive)][1] if naive else 0,
               mean_decision_tokens=float(np.mean(dec_tokens)), naive=naive, naive_reused=not measure_naive,
               ctl=(_pct(ctl, 50), _pct(ctl_attn, 50)), ctl_stream=(_pct(inc[last], 50), _pct(attn[last], 50)))
    res["ratio_start"] = res["naive_first"][0] / res["inc_first"][0]
    res["ratio_end"] = res["naive_last"][0] / res["inc_last"][0]
    res["flat"] = res["inc_last"][0] <= 1.2 * res["inc_first"][0]
    return res


def report(r: dict) -> None:
    w = r["window"]
    print(f"\n== {r['label']}: {r['ticks']} ticks, final context {r['context']} tokens, "
          f"mean decision {r['mean_decision_tokens']:.1f} tokens")
    print(f"  incremental  first {w}: p50 {r['inc_first'][0]:8.1f} ms  p95 {r['inc_first'][1]:8.1f} ms")
    print(f"  incremental  last  {w}: p50 {r['inc_last'][0]:8.1f} ms  p95 {r['inc_last'][1]:8.1f} ms")
    reused = " (same model, measured in its first row)" if r["naive_reused"] else ""
    print(f"  naive        first {w}: p50 {r['naive_first'][0]:8.1f} ms  p95 {r['naive_first'][1]:8.1f} ms{reused}")
    print(f"  naive        last  {w}: p50 {r['naive_last'][0]:8.1f} ms  p95 {r['naive_last'][1]:8.1f} ms")
    print(f"  KV bytes at end: incremental {r['kv_inc_end'] / 1e6:.2f} MB, naive {r['kv_naive_end'] / 1e6:.2f} MB")
    print(f"  naive/incremental p50 ratio: start {r['ratio_start']:.1f}x, end {r['ratio_end']:.1f}x")
    grow = r["inc_last"][0] - r["inc_first"][0]
    d_attn = r["attn_last"] - r["attn_first"]
    print(f"  inside SDPA (p50): first {r['attn_first']:.1f} ms, last {r['attn_last']:.1f} ms (+{d_attn:.1f}); "
          f"rest of the tick: first {r['rest_first']:.1f} ms, last {r['rest_last']:.1f} ms "
          f"(+{r['rest_last'] - r['rest_first']:.1f}); tick p50 growth {grow:+.1f} ms "
          f"({grow / max(1, r['ticks'] - r['window']) * 100:+.2f} ms per 100 ticks)")
    if r["ctl"][0] == r["ctl"][0]:  # a control ran (not NaN)
        (c, ca), (s, sa) = r["ctl"], r["ctl_stream"]
        print(f"  interleaved control, last {w} ticks: fresh-chunk tick p50 {c:.1f} ms (SDPA {ca:.1f}) vs stream "
              f"p50 {s:.1f} ms (SDPA {sa:.1f}) → {s / c:.2f}x; without SDPA time {(s - sa) / (c - ca):.2f}x")
    print(f"  incremental p50 flat (last {w} within 1.2x of first {w}): {'yes' if r['flat'] else 'NO'} "
          f"({r['inc_last'][0] / r['inc_first'][0]:.2f}x; without SDPA time "
          f"{r['rest_last'] / r['rest_first']:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["torch", "llamacpp", "openai"], default="torch")
    ap.add_argument("--ticks", type=int, default=600, help="ticks for the tiny models")
    ap.add_argument("--big-ticks", type=int, default=300, help="ticks for the 3B-dims model (capped by --ticks)")
    ap.add_argument("--big-layers", type=int, default=4)
    ap.add_argument("--models", default="tiny25,tiny3,big")
    ap.add_argument("--kv", default="full,sink", help="cache kinds, one row each: full | sink | tailor | quantized")
    ap.add_argument("--window", type=int, default=100, help="ticks in the first / last window")
    ap.add_argument("--naive-samples", type=int, default=3, help="naive ticks timed per window")
    ap.add_argument("--max-tokens", type=int, default=8, help="decision length cap")
    ap.add_argument("--side", type=int, default=56, help="frame side in pixels (56 → 4 image tokens)")
    ap.add_argument("--stock-attention", action="store_true", help="incremental path on transformers' own SDPA "
                    "(materialised masks, repeat_kv) instead of the backend's packed attention: the before/after")
    ap.add_argument("--no-control", action="store_true", help="skip the interleaved fresh-chunk control ticks")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default); 1 avoids "
                    "OpenMP spin-waits on a busy shared machine")
    a, _ = ap.parse_known_args(argv)
    if a.backend != "torch":  # the GGUF paths live in their own script
        import importlib

        sys.path.insert(0, str(ROOT / "benchmarks"))
        return importlib.import_module("tick_latency_gguf").main(argv)
    a = ap.parse_args(argv)

    import torch

    if a.threads > 0:
        torch.set_num_threads(a.threads)

    from engine.backends.base import BackendConfig
    from engine.backends.torch_loading import load_processor
    from engine.backends.torch_vlm import TorchBackend
    from engine.kv import KVOptions
    from tests.tiny_models import build_tiny_qwen3vl, build_tiny_qwen25vl

    kinds = [k.strip() for k in a.kv.split(",") if k.strip()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU fp32; decisions sampled (0.8/0.9/40), "
          f"<= {a.max_tokens} tokens; frames {a.side}x{a.side}; caches {', '.join(kinds)}"
          f"{'; STOCK attention' if a.stock_attention else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {"tiny25": build_tiny_qwen25vl(Path(tmp) / "q25"), "tiny3": build_tiny_qwen3vl(Path(tmp) / "q3")}
        for name in [m.strip() for m in a.models.split(",") if m.strip()]:
            if name not in dirs and name != "big":
                print(f"unknown model '{name}' (tiny25 | tiny3 | big)", file=sys.stderr)
                return 2
            big = _big_model(dirs["tiny25"], a.big_layers) if name == "big" else None
            naive = None
            for kind in kinds:
                # JoyAI's sampling defaults (0.8 / top-p 0.9 / top-k 40), seeded; naive decodes as many tokens
                cfg = BackendConfig(device="cpu", dtype="float32", seed=0, kv_cache=kind, options={"record_images": True},
                                    kv=KVOptions(fast_attention=not a.stock_attention))
                b = TorchBackend()
                if big is None:
                    cfg.model = str(dirs[name])
                    b.load(cfg)
                    ticks, label = a.ticks, f"{name} (tiny random)"
                else:
                    b.attach(big, load_processor(str(dirs["tiny25"]), "qwen2_5_vl"), cfg)
                    ticks = min(a.big_ticks, a.ticks)
                    label = f"big (Qwen2.5-VL-3B text dims, {a.big_layers} layers)"
                window = max(1, min(a.window, ticks // 3))
                control = None
                if not a.no_control:  # same weights, its own cache
                    control = TorchBackend()
                    control.attach(b.model, b.processor, cfg)
                r = run_model(f"{label}, kv {kind}", b, ticks, window, a.side, a.max_tokens, a.naive_samples, naive,
                              control)
                naive = r["naive"]
                report(r)
                b.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
