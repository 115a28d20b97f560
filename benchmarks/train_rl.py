"""SFT alone against GRPO, GRPO+NPO, AutoNPO and GRPO+RLSD from one SFT checkpoint and one budget.

    python benchmarks/train_rl.py --sft RUN/model [--data DATASET… --heldout DATASET…]
    python benchmarks/train_rl.py --proxy [--make-sft 150]      # the SymbolStream proxy (training/rl/symbolstream.py)
        [--steps 30] [--seeds 0,1,2] [--group 8] [--windows 2] [--lr 3e-4] [--threshold 0.6] [--threads 1]
    python benchmarks/train_rl.py --gpu-step 3b [--group 8] [--ticks 20]   # one GRPO update, timed (GPU)

Every method gets the same number of optimizer updates (``--steps``; NPO's scout and AutoNPO's
re-training count against it). RLSD's λ decay (0.6·steps), teacher refresh (0.2·steps), NPO's scout
length (0.3·steps) and AutoNPO's window, gap and Δ candidates scale with the budget, as printed.
``--gpu-step`` times one GRPO update (G rollouts of one window, then the loss and AdamW) on a
Qwen2.5-VL-shaped model with random bf16 weights and LoRA (benchmarks/train_gpu.py's builder), on a
generated clip; without CUDA it says so and exits 0 (``--gpu-step tiny`` runs the same path on CPU).
``--methods opsd`` adds plain on-policy self-distillation (KL to the hinted teacher; the leakage
probe's reference, which the RLSD paper expects to leak). Held-out figures are greedy decisions on
windows never trained on: SW-F1, PO hit rate, duplicate rate, false alarms per minute
(engine.eval.metrics), the episode reward and the leakage probe; "steps to threshold" is the first
update at which the training reward's mean over the last 5 updates reaches ``--threshold`` (NPO: its
main phase's steps, and those plus the scout's updates). Mean ± sd over the seeds. Then the updates each
method took to reach GRPO's final training reward (the issue's NPO goal), per seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ["sft", "grpo", "npo", "autonpo", "rlsd"]
EXTRA = ["opsd"]  # plain on-policy self-distillation: the leakage probe's reference, only when asked for
FIGURES = ["sw_f1", "po_hit_rate", "duplicate_rate", "false_alarms_per_min", "reward", "success", "leak_rate"]


def scaled(cfg, method: str, steps: int):
    """The method's switches, with its schedules scaled to the budget."""
    cfg.rlsd.enabled = method == "rlsd"
    cfg.rlsd.decay_steps = max(1, round(0.6 * steps))
    cfg.rlsd.refresh_every = max(1, round(0.2 * steps))
    cfg.npo.enabled = method == "npo"
    cfg.npo.scout_steps = max(1, round(0.3 * steps))
    cfg.autonpo.enabled = method == "autonpo"
    a = cfg.autonpo
    a.window = max(2, round(0.15 * steps))
    a.min_gap = max(2 * a.window + 1, round(0.3 * steps))
    a.snapshot_every = max(1, round(0.1 * steps))
    a.deltas = tuple(sorted({max(a.snapshot_every, round(f * steps / a.snapshot_every) * a.snapshot_every)
                             for f in (0.1, 0.2, 0.3)}))
    return cfg


def steps_to(rewards: list[float], threshold: float) -> int | None:
    """The first update (1-based) at which the mean of the last 5 training rewards reaches ``threshold``
    (a full window of 5: one lucky first batch does not count)."""
    for i in range(4, len(rewards)):
        if sum(rewards[i - 4:i + 1]) / 5 >= threshold:
            return i + 1
    return None


def reach(out: Path, threshold: float) -> tuple[int | None, int | None]:
    """(updates to ``threshold`` counting every update, the same without NPO's scout or None). NPO's own
    policy is the one trained after the scout: its steps are counted from the restart (the scout's rewards
    never count as reaching it) and the scout's updates are added for the total."""
    rec = [json.loads(x) for x in (out / "metrics.jsonl").open()]
    scout = sum(x["phase"] == "scout" for x in rec)
    if not scout:
        return steps_to([x["reward"] for x in rec], threshold), None
    s = steps_to([x["reward"] for x in rec if x["phase"] == "main"], threshold)
    return (None if s is None else scout + s), s


def final_reward(out: Path) -> float:
    """The training reward's mean over the last 5 updates of a run."""
    r = [json.loads(x)["reward"] for x in (out / "metrics.jsonl").open()][-5:]
    return sum(r) / len(r)


def fmt(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f}±{sd:.3f}"


def gpu_step(shape: str, group: int, ticks: int, max_tokens: int, seconds: int) -> int:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and shape != "tiny":
        print("no CUDA device: skipped (--gpu-step tiny runs the same path on CPU)")
        return 0
    import random

    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from benchmarks.train_gpu import build
    from engine.backends.torch_loading import load_processor
    from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite
    from training.config import LoraConfig
    from training.dataset import read_dataset
    from training.lora import wrap_lora
    from training.rl.clips import clip_windows
    from training.rl.config import RLConfig, RolloutConfig
    from training.rl.trainer import GRPOTrainer
    from training.tiny import dataset_texts

    work = Path(tempfile.mkdtemp(prefix="train_rl_gpu-"))
    make_suite(work / "suite", SuiteSpec(seed=5, size=(640, 480), clips=[ClipSpec("monitoring", seconds, 1)]))
    anns, _ = read_dataset(work / "suite")
    path = build(work / "model", shape, dataset_texts(anns), 448 * 448 if shape != "tiny" else 56 * 56)
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(path)).to(dtype)
    processor = load_processor(str(path), model.config.model_type)
    model = wrap_lora(model, LoraConfig())
    t0 = time.perf_counter()
    windows = clip_windows(model.get_base_model(), processor, anns, random.Random(0), (ticks, ticks))
    print(f"layout: {len(windows)} windows of {ticks} ticks in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = RLConfig(steps=1, lr=1e-5, save_every=0, rollout=RolloutConfig(group=group, max_tokens=max_tokens))
    tr = GRPOTrainer(cfg, model, processor, windows[:1], [], device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rollouts, _ = tr.collect(0)
    if cuda:
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    stats = tr.update(rollouts)
    if cuda:
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    n_tok = sum(len(d.sampled) for r in rollouts for d in r.decided)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(f"{shape}: one GRPO update, G={group}, {ticks} ticks, {len(rollouts[0].ids)} tokens per sequence: "
          f"rollouts {t1 - t0:.1f} s ({n_tok} sampled tokens), loss+update {t2 - t1:.1f} s, "
          f"peak GPU memory {peak:.1f} GiB; loss {stats['loss']}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", default="", help="an SFT checkpoint folder (RUN/model)")
    ap.add_argument("--data", nargs="*", default=[], help="dataset folders (with --sft on a VLM)")
    ap.add_argument("--heldout", nargs="*", default=[])
    ap.add_argument("--proxy", action="store_true", help="run on the SymbolStream proxy")
    ap.add_argument("--make-sft", type=int, default=0, metavar="STEPS", help="with --proxy: SFT a proxy model first")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--windows", type=int, default=2, help="windows per update")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threshold", type=float, default=0.6, help="training reward to reach (declared before running)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"of {METHODS + EXTRA}")
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--eval-windows", type=int, default=0, help="held-out windows scored (0 = all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="")
    ap.add_argument("--gpu-step", default="", choices=["", "3b", "7b", "tiny"], help="time one GRPO update")
    ap.add_argument("--ticks", type=int, default=20, help="with --gpu-step: ticks in the window")
    ap.add_argument("--seconds", type=int, default=60, help="with --gpu-step: length of the generated clip")
    a = ap.parse_args()
    if a.gpu_step:
        return gpu_step(a.gpu_step, a.group, a.ticks, a.max_tokens, a.seconds)

    import torch

    from training.rl.config import RLConfig, RolloutConfig
    from training.rl.evaluate import evaluate
    from training.rl.rollout import Roller
    from training.rl.run import SYMBOLSTREAM, make_symbolstream_sft, setup
    from training.rl.trainer import GRPOTrainer

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    work = Path(a.work or tempfile.mkdtemp(prefix="train_rl_"))
    sft = a.sft
    if a.proxy and (a.make_sft or not sft):
        t0 = time.perf_counter()
        sft = str(make_symbolstream_sft(work / "sft", steps=a.make_sft or 150))
        print(f"SymbolStream SFT: {a.make_sft or 150} steps in {time.perf_counter() - t0:.0f} s → {sft}")
    data = [SYMBOLSTREAM] if a.proxy else a.data
    if not sft or not data:
        ap.error("give --sft DIR --data DATASET…, or --proxy")
    seeds = [int(s) for s in a.seeds.split(",")]
    methods = a.methods.split(",")
    if set(methods) - set(METHODS + EXTRA):
        ap.error(f"--methods: unknown {sorted(set(methods) - set(METHODS + EXTRA))} (known: {METHODS + EXTRA})")
    print(f"budget: {a.steps} updates per run × {a.windows} windows × G={a.group}; seeds {seeds}; lr {a.lr}")
    probe = scaled(RLConfig(), "autonpo", a.steps)
    print(f"scaled schedules: RLSD λ 0.5→0 over {probe.rlsd.decay_steps} steps, teacher refresh every "
          f"{probe.rlsd.refresh_every}; NPO scout {probe.npo.scout_steps} updates; AutoNPO window "
          f"{probe.autonpo.window}, gap {probe.autonpo.min_gap}, Δ ∈ {probe.autonpo.deltas}")
    print(f"threshold (declared): training reward mean over 5 updates ≥ {a.threshold}")
    base_cfg = RLConfig(init=sft, data=data, steps=a.steps, lr=a.lr, windows_per_step=a.windows, save_every=0,
                        threads=a.threads, rollout=RolloutConfig(group=a.group, max_tokens=a.max_tokens))
    model0, processor, device, train, held = setup(base_cfg, a.heldout or None)
    held = held[:a.eval_windows] if a.eval_windows > 0 else held
    weights0 = copy.deepcopy(model0.state_dict())
    print(f"{len(train)} training windows, {len(held)} held-out windows")
    results: dict[str, list[dict]] = {m: [] for m in methods}
    t_all = time.perf_counter()
    for method in methods:
        for seed in seeds:
            model0.load_state_dict(weights0)
            t0 = time.perf_counter()
            if method == "sft":
                res = evaluate(Roller(model0, processor, base_cfg.rollout, device), held, base_cfg.reward)
                res.update(steps_to=None, steps_to_no_scout=None)
            else:
                cfg = scaled(copy.deepcopy(base_cfg), method, a.steps)
                cfg.seed = seed
                out = work / f"{method}_{seed}"
                objective = "opsd" if method == "opsd" else "grpo"
                res = GRPOTrainer(cfg, model0, processor, train, held, device, objective).run(out, bar=False)
                res["steps_to"], res["steps_to_no_scout"] = reach(out, a.threshold)
            res["wall_s"] = round(time.perf_counter() - t0, 1)
            results[method].append(res)
            print(f"  {method:8s} seed {seed}: " + ", ".join(f"{k} {res.get(k)}" for k in FIGURES)
                  + f", steps_to {res['steps_to']} ({res['wall_s']} s)", flush=True)
            if method == "sft":
                break  # greedy decisions: SFT alone is one number
    print(f"\ntotal wall {time.perf_counter() - t_all:.0f} s")
    head = f"{'method':9s}" + "".join(f"{k:>22s}" for k in [*FIGURES, "steps_to", "steps_to_no_scout"])
    print(head)
    for m in methods:
        rs = results[m]
        print(f"{m:9s}" + "".join(f"{fmt([r.get(k) for r in rs]):>22s}" for k in [*FIGURES, "steps_to",
                                                                                  "steps_to_no_scout"]))
    if "grpo" in methods:  # the goal "NPO reaches GRPO's final reward in fewer total steps"
        target = statistics.mean(final_reward(work / f"grpo_{s}") for s in seeds)
        print(f"\nupdates to GRPO's final training reward ({target:.3f}: mean over seeds of its last 5 updates):")
        for m in methods:
            if m != "sft":
                got = [reach(work / f"{m}_{s}", target) for s in seeds]
                for r, (t, n) in zip(results[m], got, strict=True):
                    r.update(steps_to_grpo_final=t, steps_to_grpo_final_no_scout=n)
                print(f"  {m:8s} " + ", ".join(f"seed {s}: {t if t is not None else '—'}"
                                              + (f" ({n} without the scout)" if n is not None else "")
                                              for s, (t, n) in zip(seeds, got, strict=True)))
    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
