"""DAMI-style interpolation on the tiny Instruct/Thinking pair (engine/dami/tiny_pair.py).

Builds (or reuses) the pair, then on a held-out set graded by difficulty (operand digits 1–--digits):

* accuracy, mean generated tokens and the share of answers that thought, at fixed λ from 0 to 1 in
  steps of 1/8 (the brain's buckets among them) plus seven λ around the pair's thinking transition;
* DAMI zero-shot (confidence + discrepancy; u_lo/u_hi chosen on a separate calibration split) and
  DAMI trained (preference estimator fitted on the calibration split's λ sweep, its accuracy weight
  chosen by two-fold cross-validation there); nothing is chosen on the held-out set. ``--buckets
  transition`` gives DAMI buckets around the transition instead of the brain's default;
* the Spearman correlation of λ(q) with difficulty, the share of questions at an in-between λ, the
  accuracy–tokens front, and the issue's goals;
* switch cost per strategy (in-place swap, exact rebuild, bucket hit, bucket miss, GGUF bucket merge)
  and memory.

    flock /tmp/bench.lock .venv/bin/python benchmarks/dami.py [--out DIR] [--base-steps N --ft-steps N --ft-lr R]

All generation is greedy; DAMI answers are generated at their chosen λ (grouped by λ), not looked up.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.dami import tiny_pair  # noqa: E402
from engine.dami.interp import interpolate_state  # noqa: E402
from engine.dami.lam import BUCKETS, PrefEstimator, ZeroShotLambda, uncertainty  # noqa: E402
from engine.dami.scoring import confidence, discrepancy, instruct_probe, teacher_probs  # noqa: E402
from engine.dami.serve import BucketCache, InPlaceSwapper  # noqa: E402
from engine.dami.tiny_pair import (  # noqa: E402
    THINK,
    build_pair,
    graded_set,
    make_tokenizer,
    pair_stamp,
    parse_answer,
)
from engine.dami.weights import SafetensorsDict  # noqa: E402

FIXED = tuple(i / 8 for i in range(9))  # includes every default bucket
NEAR_TRANSITION = (-0.04, -0.03, -0.02, -0.01, 0.0, 0.01, 0.02)  # extra fixed λ around where thinking starts
# --buckets transition: DAMI's buckets dense around this pair's own transition t (found on the calibration
# split), as the default buckets are dense around the one seen on Qwen3-4B 2507 pairs
TRANSITION_BUCKETS = (-0.02, -0.01, 0.0, 0.01, 0.02)


def spearman(x: list[float], y: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return torch.tensor(r)

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = (rx.norm() * ry.norm()).item()
    return float((rx * ry).sum() / den) if den else 0.0


def template_prefill(path, problem) -> str:
    """What a checkpoint's chat template adds after the bare prompt (``<think>`` for a pre-inserting one)."""
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(path).apply_chat_template(
        [{"role": "user", "content": problem.question}], tokenize=False, add_generation_prompt=True)
    return text[len(problem.prompt):]


@torch.no_grad()
def generate(model, tok, problems, prefill: str = "", batch: int = 256):
    """(correct, tokens, thought) per problem at the model's current weights; ``prefill`` is what the
    template for this λ pre-inserts."""
    out = []
    for s in range(0, len(problems), batch):
        chunk = problems[s:s + batch]
        ids = torch.tensor([tok(p.prompt + prefill, add_special_tokens=False)["input_ids"] for p in chunk])
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12 * tiny_pair.DIGITS, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[:, ids.shape[1]:]
        for p, row in zip(chunk, gen.tolist(), strict=True):
            n = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
            text = prefill + tok.decode(row[:n], skip_special_tokens=False)
            out.append((parse_answer(text) == p.answer, n, THINK in text))
    return out


@torch.no_grad()
def probe_all(m_i, m_t, tok, problems, k: int = 8):
    """u(q) and h(q) per problem (batched; prompts have equal length)."""
    ids = torch.tensor([tok(p.prompt, add_special_tokens=False)["input_ids"] for p in problems])
    pr = instruct_probe(m_i, ids, k, tok.eos_token_id)
    c = confidence(pr)
    d = discrepancy(pr, teacher_probs(m_t, ids, pr.answer))
    return [uncertainty(float(a), float(b)) for a, b in zip(c, d, strict=True)], pr.pooled


def transition(swapper, tok, problems, prefill, steps: int = 7) -> float:
    """The λ where half the answers think, by bisection on ``problems`` (the calibration split): the pair's
    phase transition, where a finer fixed-λ grid is worth measuring."""
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        swapper.set(mid)
        rows = generate(swapper.model, tok, problems, prefill(mid))
        lo, hi = (lo, mid) if sum(r[2] for r in rows) >= len(rows) / 2 else (mid, hi)
    return (lo + hi) / 2


def summarise(rows):
    """(accuracy, mean generated tokens)."""
    n = len(rows)
    return sum(r[0] for r in rows) / n, sum(r[1] for r in rows) / n


def front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names not dominated (higher-or-equal accuracy and lower-or-equal tokens, one strictly)."""
    keep = set()
    for a, (acc_a, tok_a) in points.items():
        if not any((acc_b >= acc_a and tok_b <= tok_a) and (acc_b > acc_a or tok_b < tok_a)
                   for b, (acc_b, tok_b) in points.items() if b != a):
            keep.add(a)
    return keep


def run_at(swapper, tok, problems, lams, prefill):
    """Answer each problem at its own λ (grouped by λ); ``prefill(λ)`` is that λ's template prefill."""
    res = [None] * len(problems)
    for lam in sorted(set(lams)):
        idx = [i for i, x in enumerate(lams) if x == lam]
        swapper.set(lam)
        for i, r in zip(idx, generate(swapper.model, tok, [problems[i] for i in idx], prefill(lam)), strict=True):
            res[i] = r
    return res


def calibrate_quantiles(us, table, budget_frac: float, buckets):
    """The zero-shot map's quantiles, chosen on the calibration split: best accuracy whose mean tokens
    stay within ``budget_frac`` of the Thinking model's (ties → fewer tokens)."""
    think_tokens = summarise(table[1.0])[1]
    best = None
    for lo_q in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        for hi_q in (0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
            if hi_q <= lo_q:
                continue
            z = ZeroShotLambda.calibrate(us, lo_q, hi_q, buckets)
            rows = [table[z(u)][i] for i, u in enumerate(us)]
            acc, toks = summarise(rows)
            key = (toks <= budget_frac * think_tokens, acc, -toks)
            if best is None or key > best[0]:
                best = (key, z, lo_q, hi_q)
    return best[1], best[2], best[3]


ACC_WEIGHTS = (1.0, 3.0, 10.0, 30.0)  # the trained estimator's accuracy-pair weights tried on the calibration split


def fit_pref(h, table, buckets, idx, acc_weight, seed):
    """A preference estimator fitted on the calibration rows ``idx``."""
    torch.manual_seed(seed)  # the estimator's initial weights (its fit seeds only the updates)
    est = PrefEstimator(h.shape[1], buckets, hidden=32)
    accs = [{lam: float(table[lam][i][0]) for lam in buckets} for i in idx]
    toks = [{lam: float(table[lam][i][1]) for lam in buckets} for i in idx]
    est.fit(h[idx], accs, toks, epochs=300, acc_weight=acc_weight)
    return est


def choose_acc_weight(h, table, buckets, budget_frac: float, seed: int) -> tuple[float, dict]:
    """Two-fold on the calibration split: the weight whose out-of-fold choices give the best accuracy
    within ``budget_frac`` of the Thinking model's tokens (the zero-shot map's rule; ties → fewer tokens)."""
    n = h.shape[0]
    folds = (list(range(0, n, 2)), list(range(1, n, 2)))
    think_tokens = summarise(table[1.0])[1]
    best, tried = None, {}
    for w in ACC_WEIGHTS:
        rows = []
        for fit_idx, test_idx in (folds, folds[::-1]):
            lams = fit_pref(h, table, buckets, fit_idx, w, seed).predict(h[test_idx])
            rows += [table[lam][i] for lam, i in zip(lams, test_idx, strict=True)]
        acc, toks = summarise(rows)
        tried[w] = (acc, toks)
        key = (toks <= budget_frac * think_tokens, acc, -toks)
        if best is None or key > best[0]:
            best = (key, w)
    return best[1], tried


def switch_costs(model_i, sd_i, sd_t, reps: int = 20):
    out = {}
    sw = InPlaceSwapper(copy.deepcopy(model_i), lambda: (sd_i, sd_t), 0.25, rebuild_every=10**9)
    t = time.perf_counter()
    for r in range(reps):
        sw.set(0.5 if r % 2 == 0 else 0.625)
    out["in-place swap"] = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps // 4):
        sw.rebuild(0.5)
    out["exact rebuild"] = (time.perf_counter() - t) / max(1, reps // 4)

    def build(lam):
        m = copy.deepcopy(model_i)
        m.load_state_dict(interpolate_state(sd_i, sd_t, lam))
        return m

    cache = BucketCache(build, capacity=2)
    t = time.perf_counter()
    cache.get(0.5)
    out["bucket miss"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(reps):
        cache.get(0.5)
    out["bucket hit"] = (time.perf_counter() - t) / reps
    model_bytes = sum(p.numel() * p.element_size() for p in model_i.parameters())
    mem = {"in-place swap": model_bytes + sw.delta_bytes(), "bucket cache (K=2)": 2 * model_bytes,
           "one model": model_bytes}
    return out, mem


def gguf_costs(paths, out_dir: Path):
    """Export both to f16 GGUF, time one bucket merge and (if llama-cpp-python is here) a load."""
    try:
        from engine.dami.gguf_export import export_qwen3
        from engine.dami.gguf_merge import merge_gguf
    except ImportError as exc:
        return {"gguf": f"skipped ({exc})"}
    gi, gt = out_dir / "instruct-f16.gguf", out_dir / "thinking-f16.gguf"
    if not gi.exists():
        export_qwen3(paths.instruct, gi, "f16")
        export_qwen3(paths.thinking, gt, "f16")
    t = time.perf_counter()
    merged = merge_gguf(gi, gt, out_dir / "merged-0.5.gguf", 0.5)
    res = {"GGUF bucket merge (f16)": time.perf_counter() - t}
    try:
        from llama_cpp import Llama
    except ImportError:
        return res
    t = time.perf_counter()
    llm = Llama(model_path=str(merged), n_ctx=128, n_threads=1, verbose=False)
    res["GGUF bucket load (llama.cpp)"] = time.perf_counter() - t
    llm.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/presence-dami", help="where the pair and GGUF files go")
    ap.add_argument("--digits", type=int, default=tiny_pair.DIGITS, help="widest operand (difficulty 1–digits)")
    ap.add_argument("--base-steps", type=int, default=700)
    ap.add_argument("--ft-steps", type=int, default=150)
    ap.add_argument("--ft-lr", type=float, default=5e-4, help="fine-tune rate of both Instruct and Thinking")
    ap.add_argument("--n-per-level", type=int, default=40, help="held-out questions per difficulty")
    ap.add_argument("--calib-per-level", type=int, default=40, help="calibration-split questions per difficulty")
    ap.add_argument("--budget", type=float, default=0.55,
                    help="zero-shot calibration token budget (× Thinking; below the goal's 0.6 to leave a margin)")
    ap.add_argument("--buckets", choices=("default", "transition"), default="default",
                    help="DAMI's λ buckets: the brain's default, or 0, 1 and five around this pair's transition")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)  # 2 shared cores: one thread was ~10x faster than two for these tiny models
    out = Path(a.out)
    t0 = time.perf_counter()
    tiny_pair.set_digits(a.digits)
    paths = build_pair(out / "pair", a.base_steps, a.ft_steps, a.seed, log_every=100, ft_lr=a.ft_lr)
    built = time.perf_counter() - t0
    stamp = out / "pair" / pair_stamp(a.base_steps, a.ft_steps, a.ft_lr, a.seed)
    print(f"pair: {paths.instruct.parent} (trained in {float(stamp.read_text()):.0f} s; this run {built:.0f} s)")

    from transformers import AutoModelForCausalLM

    tok = make_tokenizer()
    m_i = AutoModelForCausalLM.from_pretrained(paths.instruct, dtype=torch.float32).eval()
    m_t = AutoModelForCausalLM.from_pretrained(paths.thinking, dtype=torch.float32).eval()
    sd_i, sd_t = SafetensorsDict(paths.instruct), SafetensorsDict(paths.thinking)
    sw = InPlaceSwapper(copy.deepcopy(m_i), lambda: (sd_i, sd_t), 0.0)
    held = graded_set(a.n_per_level, seed=1000 + a.seed)
    calib = graded_set(a.calib_per_level, seed=2000 + a.seed)
    diff = [p.difficulty for p in held]
    levels = range(1, a.digits + 1)
    # the brain's rule: the Thinking checkpoint's template from λ ≥ 0.5 (DamiOptions.thinking_from)
    think_prefill = template_prefill(paths.thinking, held[0])

    def prefill(lam):
        return think_prefill if lam >= 0.5 else ""

    t = time.perf_counter()
    t_half = transition(sw, tok, calib, prefill)
    grid = sorted(set(FIXED) | {round(t_half + d, 3) for d in NEAR_TRANSITION if 0 < t_half + d < 1})
    buckets = BUCKETS if a.buckets == "default" else (
        0.0, *(round(t_half + d, 3) for d in TRANSITION_BUCKETS), 1.0)
    table_h, table_c = {}, {}
    for lam in grid:
        sw.set(lam)
        table_h[lam] = generate(sw.model, tok, held, prefill(lam))
        table_c[lam] = generate(sw.model, tok, calib, prefill(lam))
    sweep_s = time.perf_counter() - t

    # everything DAMI chooses is fitted on the calibration split; the held-out set only measures
    u_c, h_c = probe_all(m_i, m_t, tok, calib)
    u_h, h_h = probe_all(m_i, m_t, tok, held)
    z, lo_q, hi_q = calibrate_quantiles(u_c, table_c, a.budget, buckets)
    lam_conf = [z(u) for u in u_h]
    acc_weight, tried = choose_acc_weight(h_c, table_c, buckets, a.budget, a.seed)
    lam_pref = fit_pref(h_c, table_c, buckets, list(range(len(calib))), acc_weight, a.seed).predict(h_h)

    points = {f"fixed λ={lam:g}": summarise(table_h[lam]) for lam in grid}
    dami = {"DAMI zero-shot": (lam_conf, run_at(sw, tok, held, lam_conf, prefill)),
            "DAMI trained": (lam_pref, run_at(sw, tok, held, lam_pref, prefill))}
    for name, (_, rows) in dami.items():
        points[name] = summarise(rows)
    on_front = front(points)

    print(f"\nheld-out: {len(held)} questions ({a.n_per_level} per difficulty {levels[0]}–{levels[-1]} operand "
          f"digits); calibration split {len(calib)} (other seed); sweep {sweep_s:.0f} s; half the calibration "
          f"answers think from λ ≈ {t_half:.3f}, so the fixed grid is denser there")
    print(f"\n| method | accuracy | mean tokens | thought | acc. by digits {'/'.join(map(str, levels))} | on front |")
    print("|---|---|---|---|---|---|")
    for name, (acc, tk) in points.items():
        rows = table_h[float(name.split("=")[1])] if name.startswith("fixed") else dami[name][1]
        by = "/".join(f"{sum(r[0] for r, d in zip(rows, diff, strict=True) if d == c) / diff.count(c):.2f}"
                      for c in levels)
        thought = sum(r[2] for r in rows) / len(rows)
        print(f"| {name} | {acc:.3f} | {tk:.1f} | {thought:.0%} | {by} | {'yes' if name in on_front else 'no'} |")

    think_acc, think_tok = points["fixed λ=1"]
    print(f"\nzero-shot map: u_lo={z.u_lo:.4f} (q{lo_q:g}), u_hi={z.u_hi:.4f} (q{hi_q:g}) on the calibration split, "
          f"budget {a.budget:g}× Thinking tokens; trained estimator: accuracy pairs weighted {acc_weight:g}× "
          f"(two-fold on the calibration split, same rule; out-of-fold accuracy/tokens: "
          f"{', '.join(f'{w:g}× {x:.3f}/{t:.1f}' for w, (x, t) in tried.items())})")
    for name, (lams, _) in dami.items():
        acc, tk = points[name]
        mid = sum(0 < x < 1 for x in lams) / len(lams)
        rho = spearman(lams, diff)
        dominated_by = [f for f in points if f.startswith("fixed") and points[f][0] >= acc and points[f][1] <= tk
                        and points[f] != (acc, tk)]
        hist = {b: sum(x == b for x in lams) for b in buckets}
        print(f"\n{name}: λ histogram {hist}")
        print(f"  Spearman(λ(q), difficulty) = {rho:.3f}   [goal > 0.3: {'met' if rho > 0.3 else 'MISSED'}]")
        print(f"  at an in-between λ: {mid:.0%}   [goal ≥ 30%: {'met' if mid >= 0.3 else 'MISSED'}]")
        print(f"  dominated by: {', '.join(dominated_by) or 'none'}   [goal none: "
              f"{'met' if not dominated_by else 'MISSED'}]")
        ok = acc >= think_acc and tk <= 0.6 * think_tok
        print(f"  accuracy {acc:.3f} vs Thinking {think_acc:.3f}; tokens {tk:.1f} = {tk / think_tok:.0%} of "
              f"Thinking's   [goal ≥ Thinking acc. with ≤ 60% tokens: {'met' if ok else 'MISSED'}]")
    fixed_front = front({k: v for k, v in points.items() if k.startswith("fixed")})
    print(f"\nfront of the fixed λ alone: {', '.join(sorted(fixed_front))} (ties with equal accuracy and tokens "
          "stay on it)")
    ends = {points["fixed λ=0"], points["fixed λ=1"]}
    mids = [f for f in fixed_front if 0 < float(f.split("=")[1]) < 1 and points[f] not in ends]
    ties = [f for f in fixed_front if 0 < float(f.split("=")[1]) < 1 and points[f] in ends]
    print(f"in-between fixed λ merely tied with an end: {', '.join(sorted(ties)) or 'none'} (not counted)")
    print(f"in-between fixed λ on that front: {', '.join(sorted(mids)) or 'none'}   "
          f"[goal ≥ 1: {'met' if mids else 'MISSED: the pair is not interpolable in this sense'}]")

    costs, mem = switch_costs(m_i, sd_i, sd_t)
    costs.update(gguf_costs(paths, out))
    print("\n| switch | seconds |\n|---|---|")
    for k, v in costs.items():
        print(f"| {k} | {v if isinstance(v, str) else f'{v * 1e3:.3f} ms'} |")
    print("\n| memory | bytes |\n|---|---|")
    for k, v in mem.items():
        print(f"| {k} | {v / 1e6:.2f} MB |")
    print("\nGPU row: not run (no accelerator in this session).")


if __name__ == "__main__":
    main()
