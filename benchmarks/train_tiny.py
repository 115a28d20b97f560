"""Train a tiny interaction model here and run it through the app's own backends (issue: train_tiny).

    python benchmarks/train_tiny.py [--steps 2500] [--per-family 16] [--duration 20] [--context 0.6] [--work DIR]
        [--keep DIR] [--no-gguf] [--no-hints]

1. ``make_suite`` with training seeds and ``content = "train"`` (the held-out quarter of every
   content pool never appears), several families;
2. a tiny Qwen2.5-VL built from config (training/tiny.py), weighted SFT (training/trainer.py) with the
   stream's own tokens trained too (``--context``: ``WeightConfig.context``; a model trained from scratch
   learns to read its hints only so);
3. held-out clips with *other* seeds: seen content (``train`` pools) and unseen content (``heldout``),
   each scored through the product path (``app.commands.eval.backend_factory`` → the session loop,
   greedy decoding) for untrained, trained, heuristic, never, always;
4. the trained checkpoint converted to GGUF + mmproj (f32) and run through ``--backend llamacpp``:
   the share of held-out seconds on which the two backends make the same decision.

The tiny model sees frames of at most ``--max-pixels`` (default 9408 = 112×84: a 4:3 frame the torch
processor and llama.cpp's image preprocessor both show as 12 image tokens; at the session's default
448² llama.cpp shows a 320×240 frame as 88) and, unless ``--no-hints``, perception hints in every turn
(the change score and the frame's OCR text: ``engine.context.PerceptionHints``), in training and in
evaluation alike. The baselines run at the session's default frame size, as a user runs them.

Prints the loss curve, wall times and the tables, then the goals met or missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAMILIES = ["monitoring", "counting", "lecture", "translation", "delegation", "distractor"]
HELD_OUT_SEED = 123  # not 99: the context weight and clip length were chosen on seed-99 clips
MAX_TOKENS = 48  # the tiny model's decision cap: its longest reply (a delegation) is ~25 tokens; an untrained
# model writes to the cap every second, and at the session's default 128 its evaluation was most of the run


def suite(out: Path, seed: int, content: str, per_family: int, duration: int) -> Path:
    from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite

    make_suite(out, SuiteSpec(seed=seed, content=content, clips=[ClipSpec(f, duration, per_family) for f in FAMILIES]))
    return out


def evaluate(name: str, model: str, suite_dir: Path, config: Path):
    """One backend over a suite as ``presence eval run --backend NAME --model MODEL --config CONFIG`` runs it."""
    from app.commands.eval import run_backend

    t0 = time.perf_counter()
    run = run_backend(suite_dir, name, model, str(config))
    return run, time.perf_counter() - t0


def tiny_config(path: Path, max_pixels: int, hints: bool, threads: int) -> Path:
    """The settings the tiny model runs with (``presence run --config`` / ``presence eval run --config``)."""
    path.write_text(f"[backend]\ngreedy = true\ndevice = \"cpu\"\nmax_tokens = {MAX_TOKENS}\n\n[backend.hints]\n"
                    f"perception_hints = {str(hints).lower()}\n\n[backend.llamacpp]\nn_threads = {threads}\n\n"
                    f"[capture]\nmax_pixels = {max_pixels}\n")
    return path


def keep(dest: Path, model: Path, gguf: Path | None, config: Path, side: int, max_pixels: int, hints: bool) -> None:
    """Copy the trained checkpoint (and its GGUF + mmproj) where a later evaluation can find it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model, dest / "model", dirs_exist_ok=True)
    if gguf is not None:
        shutil.copytree(gguf, dest / "gguf", dirs_exist_ok=True)
    shutil.copy(config, dest / "presence.toml")
    (dest / "READY").write_text(
        f"tiny Qwen2.5-VL trained by benchmarks/train_tiny.py; run it with --config presence.toml: perception hints "
        f"{'on' if hints else 'off'}, frames max_pixels = {max_pixels} (112x84 for 4:3), processor side {side}, "
        f"greedy; model/ (HF, --backend torch), gguf/ (f32 model + mmproj, --backend llamacpp)\n")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _prod(shape) -> int:
    n = 1
    for x in shape:
        n *= int(x)
    return n


def agreement(a, b) -> tuple[float, float, str]:
    """(same action, same decision text) over the seconds both runs decided, and the same two counts
    over the seconds where either run replied."""
    same_action = same_text = n = r_action = r_text = r_n = 0
    for ca, cb in zip(a.clips, b.clips, strict=True):
        da = {d["t"]: d for d in ca.decisions if d["action"] != "skipped"}
        db = {d["t"]: d for d in cb.decisions if d["action"] != "skipped"}
        for t in da.keys() & db.keys():
            act = da[t]["action"] == db[t]["action"]
            text = act and da[t]["text"] == db[t]["text"]
            n, same_action, same_text = n + 1, same_action + act, same_text + text
            if "silence" not in (da[t]["action"], db[t]["action"]) or not act:
                r_n, r_action, r_text = r_n + 1, r_action + act, r_text + text
    replies = f"replies: same action {r_action}/{r_n}, same text {r_text}/{r_n}"
    return (same_action / n, same_text / n, replies) if n else (0.0, 0.0, replies)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--per-family", type=int, default=16, help="training clips per family")
    ap.add_argument("--eval-per-family", type=int, default=3)
    ap.add_argument("--duration", type=int, default=20, help="seconds per clip (training and held-out)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--context", type=float, default=0.6, help="loss weight of the stream's own tokens (0 = decisions only)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared, busy machine")
    ap.add_argument("--work", default="")
    ap.add_argument("--keep", default="", help="copy the trained model, its GGUF and its config here (+ READY)")
    ap.add_argument("--no-gguf", action="store_true")
    ap.add_argument("--no-hints", action="store_true", help="train and evaluate without perception hints")
    ap.add_argument("--side", type=int, default=112, help="the tiny model's largest frame side (processor max_pixels = side²)")
    ap.add_argument("--max-pixels", type=int, default=112 * 84, help="the session's frame size for the tiny model")
    a = ap.parse_args()

    import torch

    from engine.context import HintOptions
    from engine.eval.runner import markdown_table
    from training.config import TrainConfig
    from training.dataset import read_dataset
    from training.tiny import build_tiny_model, dataset_texts
    from training.trainer import train
    from training.weights import WeightConfig

    torch.set_num_threads(a.threads)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="train_tiny-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    train_dir = suite(work / "train", 11, "train", a.per_family, a.duration)
    seen = suite(work / "seen", HELD_OUT_SEED, "train", a.eval_per_family, a.duration)
    unseen = suite(work / "unseen", HELD_OUT_SEED, "heldout", a.eval_per_family, a.duration)
    anns, _ = read_dataset(train_dir)
    init = build_tiny_model(work / "init", dataset_texts(anns), hidden=a.hidden, layers=a.layers,
                            image_side=a.side)  # tokenizer: training text only
    hints = not a.no_hints
    config = tiny_config(work / "tiny.toml", a.max_pixels, hints, a.threads)
    users = work / "greedy.toml"  # the baselines run as a user runs them: default frame size, no hints
    users.write_text("[backend]\ngreedy = true\ndevice = \"cpu\"\n")
    print(f"# train_tiny: {len(anns)} training clips ({', '.join(FAMILIES)}, {a.duration} s, seed 11, content=train); "
          f"held-out seed {HELD_OUT_SEED}: {a.eval_per_family}/family seen + unseen; {a.steps} steps, lr {a.lr}, hidden {a.hidden}, "
          f"{a.layers} layers, context weight {a.context}; "
          f"perception hints {'on' if hints else 'off'}; frames {a.max_pixels} px; {a.threads} thread(s); work {work}; "
          f"load average {_load()}")

    t0 = time.perf_counter()
    cfg = TrainConfig(model=str(init), data=[str(train_dir)], out=str(work / "run"), steps=a.steps, lr=a.lr,
                      warmup=20, window=(20, 45), save_every=0, threads=a.threads, seed=0,
                      weights=WeightConfig(context=a.context), hints=HintOptions(perception_hints=hints),
                      max_pixels=a.max_pixels)
    model = train(cfg, progress=None, bar=False)
    t_train = time.perf_counter() - t0
    losses = [json.loads(x)["loss"] for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    k = max(1, len(losses) // 15)
    curve = [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 3) for i in range(0, len(losses), k)]
    from safetensors import safe_open

    with safe_open(str(next(Path(model).glob("*.safetensors"))), "pt") as f:
        n_params = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())
    print(f"\n## training: {t_train:.0f} s ({t_train / max(1, a.steps):.2f} s/step), {n_params / 1e6:.2f} M parameters, "
          f"model {model}")
    print(f"loss curve (mean of every {k} steps): {curve}")

    rows: dict[str, list] = {"seen": [], "unseen": []}
    runs = {}
    for split, d in (("seen", seen), ("unseen", unseen)):
        for label, name, m in (("untrained", "torch", str(init)), ("trained", "torch", str(model)),
                               ("heuristic", "heuristic", ""), ("never", "never", ""), ("always", "always", "")):
            run, wall = evaluate(name, m, d, config if name == "torch" else users)
            runs[(split, label)] = run
            rows[split].append((label, run.summary()))
            print(f"  {split:>6} {label:<10} SW-F1 {run.summary()['sw_f1']}  ({wall:.0f} s)", flush=True)
    for split in ("seen", "unseen"):
        print(f"\n## held-out, {split} content\n")
        print(markdown_table(rows[split]))

    gguf_rate, gguf_dir = None, None
    if not a.no_gguf:
        from training.gguf import GGUFError, convert

        try:
            g, _ = convert(model, work / "gguf", "f32")
            gguf_dir = g.parent
            run, wall = evaluate("llamacpp", str(g), seen, config)
            act, text, replies = agreement(runs[("seen", "trained")], run)
            gguf_rate = act
            print(f"\n## GGUF (f32) through --backend llamacpp: same action on {act:.1%} of held-out seconds, "
                  f"same decision text on {text:.1%}; {replies} ({wall:.0f} s); SW-F1 {run.summary()['sw_f1']}")
        except (GGUFError, Exception) as exc:  # noqa: BLE001 - reported, the rest of the table stands
            print(f"\n## GGUF: not run: {str(exc).splitlines()[0]}")

    total = time.perf_counter() - t_all
    s = {lab: dict(r) for lab, r in ((sp, rows[sp]) for sp in rows)}
    tr, he, al = (s["seen"][x]["sw_f1"] or 0.0 for x in ("trained", "heuristic", "always"))
    dup = s["seen"]["trained"]["duplicate_rate"]
    print("\n## goals")
    print(f"- seen SW-F1 {tr:.3f} >= heuristic {he:.3f}: {'MET' if tr >= he else 'MISSED'}")
    print(f"- seen SW-F1 {tr:.3f} >= always {al:.3f} + 0.3: {'MET' if tr >= al + 0.3 else 'MISSED'}")
    print(f"- duplicate rate {dup:.3f} <= 0.10: {'MET' if dup <= 0.10 else 'MISSED'}")
    if gguf_rate is not None:
        print(f"- torch vs llamacpp agreement {gguf_rate:.1%} >= 95%: {'MET' if gguf_rate >= 0.95 else 'MISSED'}")
    cpu = sum(os.times()[:4])  # this process and the converter's: what a quiet machine's wall time would be, about
    print(f"- wall {total / 60:.1f} min <= 30: {'MET' if total <= 1800 else 'MISSED'} (CPU {cpu / 60:.1f} min; "
          f"load average now {_load()})")
    if a.keep:
        keep(Path(a.keep), Path(model), gguf_dir, config, a.side, a.max_pixels, hints)
        print(f"\nkept: {a.keep}")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
