"""Weighted SFT over answer-centred episodes, resumable bit-exactly.

    dataset folders ──layout (episodes.py)──▶ episodes ──▶ for step: episode order[step]
        forward(ids, M-RoPE positions, frames) ─▶ weighted_sft_loss ─▶ AdamW ─▶ metrics.jsonl
    out/checkpoint/   every ``save_every`` steps and on Ctrl-C: weights, optimizer, RNG, step
    out/model/        the final Hugging Face checkpoint (``presence run --backend torch --model``)

The data order is a pure function of (seed, epoch), and the RNG states are saved with every
checkpoint, so ``resume`` continues with the same episodes in the same order and the same random
numbers: an interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.session import SessionOptions
from training.config import TrainConfig
from training.dataset import Annotation, read_dataset
from training.episodes import Episode, episodes, layout_clip
from training.loss import weighted_sft_loss


class TrainError(RuntimeError):
    """A run cannot start or go on: one readable line."""


@dataclass
class RunState:
    step: int = 0
    losses: list[float] | None = None


def load_for_training(cfg: TrainConfig):
    """(model, processor, device) in train mode: fp32 on CPU, bf16 on CUDA unless told otherwise."""
    from engine.backends.base import ModelLoadError
    from engine.backends.torch_loading import load_model, pick_device

    device = pick_device(cfg.device)
    dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    try:
        loaded = load_model(cfg.model, device, dtype)
    except ModelLoadError as exc:
        raise TrainError(str(exc)) from None
    model = loaded.model
    if cfg.lora is not None:
        from training.lora import wrap_lora

        model = wrap_lora(model, cfg.lora)
    if not cfg.train_vision:
        # Full fine-tuning with Adam at tiny-model learning rates drifts a randomly initialised tower into
        # a large constant output that carries no picture (measured: merger output norm 0.6 → 540, the
        # visitor/no-visitor difference 57 % → 0.6 %); frozen, its features stay informative.
        for p in getattr(_base(model).model, "visual", torch.nn.Module()).parameters():
            p.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    return model, loaded.processor, loaded.device


def _base(model):
    """The underlying transformers model (inside a peft wrapper, if any)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def shuffled(ann: Annotation, rng: random.Random) -> Annotation:
    """Negative control: the same clip with its decisions permuted across its seconds."""
    import dataclasses

    from training.dataset import Item

    ts = list(range(ann.duration))
    rng.shuffle(ts)
    responses = [Item(ts[r.t], r.content, r.delegate) for r in ann.responses]
    return dataclasses.replace(ann, responses=responses)


def build_episodes(model, processor, anns: list[Annotation], cfg: TrainConfig,
                   progress: Callable[[str], None] | None = None) -> list[Episode]:
    rng = random.Random(cfg.seed)
    out = []
    for ann in anns:
        if cfg.shuffle_labels:
            ann = shuffled(ann, rng)
        opts = SessionOptions(mode=cfg.mode, delegation=cfg.delegation, max_pixels=cfg.max_pixels)
        chunks = layout_clip(_base(model), processor, ann, opts, cfg.hints)
        eps = episodes(chunks, ann, rng, cfg.weights, *cfg.window,
                       image_token_id=getattr(_base(model).config, "image_token_id", None))
        out.extend(eps)
        if progress:
            progress(f"{ann.name}: {len(eps)} episodes, {sum(len(e.input_ids) for e in eps)} tokens")
    if not out:
        raise TrainError("the dataset gave no episodes")
    return out


def order(n: int, seed: int, epoch: int) -> list[int]:
    """The episode order of one epoch: a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def forward_loss(model, ep: Episode, device: str) -> torch.Tensor:
    base = _base(model)
    ids = ep.input_ids.unsqueeze(0).to(device)  # [1, L]
    kw = dict(input_ids=ids, position_ids=ep.position_ids.unsqueeze(1).to(device), use_cache=False)  # [3, 1, L]
    if ep.pixel_values is not None:
        image_id = getattr(base.config, "image_token_id", None)
        pv, grid = ep.pixel_values.to(device, base.dtype), ep.image_grid_thw.to(device)
        kw.update(image_grid_thw=grid, mm_token_type_ids=(ids == image_id).int())
        if _vision_frozen(base):
            # A frozen tower gives the same features every epoch: computed once per episode, they are handed
            # to the model as its precomputed encoder output (measured: the tower was 60% of a forward).
            if ep.vision is None:
                with torch.no_grad():
                    ep.vision = base.model.get_image_features(pv, grid, return_dict=True)
            kw["mm_encoder_outputs"] = {"image": ep.vision}
        else:
            kw["pixel_values"] = pv
    out = model(**kw)
    return weighted_sft_loss(out.logits, ep.labels.unsqueeze(0).to(device), ep.weights.unsqueeze(0).to(device))


def _vision_frozen(base) -> bool:
    visual = getattr(getattr(base, "model", None), "visual", None)
    return visual is not None and not any(p.requires_grad for p in visual.parameters())


def _rng_state() -> dict:
    import numpy as np

    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_state(s: dict) -> None:
    import numpy as np

    torch.set_rng_state(s["torch"])
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])


def save_checkpoint(run_dir: Path, model, opt, step: int, cfg: TrainConfig) -> Path:
    ck = run_dir / "checkpoint"
    tmp = run_dir / "checkpoint.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    trainable = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"model": trainable, "optimizer": opt.state_dict(), "step": step, "rng": _rng_state()},
               tmp / "state.pt")
    (tmp / "config.json").write_text(json.dumps(_cfg_json(cfg), indent=1))
    if ck.exists():
        import shutil

        shutil.rmtree(ck)
    tmp.rename(ck)  # a kill mid-save leaves the previous checkpoint whole
    return ck


def _cfg_json(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["window"] = list(cfg.window)
    return d


def save_model(run_dir: Path, model, processor, cfg: TrainConfig) -> Path:
    """The Hugging Face layout the torch backend loads unchanged (LoRA merged unless told not to)."""
    out = run_dir / "model"
    if cfg.lora is not None:
        from training.lora import save_lora

        return save_lora(model, processor, run_dir, cfg.lora)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def train(cfg: TrainConfig, resume: bool = False, progress: Callable[[str], None] | None = print,
          bar: bool = True, stop_after: int | None = None) -> Path:
    """Run weighted SFT; returns the final model folder. ``stop_after`` (tests) interrupts the run
    after that many steps exactly as Ctrl-C would."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        anns, errors = read_dataset_all(cfg)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    for e in errors:
        (progress or (lambda s: None))(f"skipped: {e}")
    model, processor, device = load_for_training(cfg)
    eps = build_episodes(model, processor, anns, cfg, progress)
    total = cfg.steps or cfg.epochs * len(eps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    ck = run_dir / "checkpoint" / "state.pt"
    if resume:
        if not ck.is_file():
            raise TrainError(f"nothing to resume: {ck} not found")
        state = torch.load(ck, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        start = int(state["step"])
    log = (run_dir / "metrics.jsonl").open("a" if resume else "w")
    t0 = time.perf_counter()
    pbar = _bar(total, start) if bar else None
    done = start  # steps whose update is in the weights
    try:
        for step in range(start, total):
            if stop_after is not None and step - start >= stop_after:
                raise KeyboardInterrupt
            epoch, k = divmod(step, len(eps))
            ep = eps[order(len(eps), cfg.seed, epoch)[k]]
            lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = forward_loss(model, ep, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            done = step + 1
            value = loss.item()
            if not math.isfinite(value):
                raise TrainError(f"loss is {value} at step {step + 1} (lower --lr)")
            rec = {"step": step + 1, "loss": round(value, 6), "lr": lr, "episode": ep.name, "ticks": list(ep.ticks),
                   "tokens": len(ep.input_ids), "wall_s": round(time.perf_counter() - t0, 3)}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if pbar is not None:
                pbar.set_postfix(loss=f"{value:.4f}")
                pbar.update(1)
            if cfg.save_every and (step + 1) % cfg.save_every == 0:
                save_checkpoint(run_dir, model, opt, done, cfg)
    except KeyboardInterrupt:
        save_checkpoint(run_dir, model, opt, done, cfg)
        raise
    finally:
        log.close()
        if pbar is not None:
            pbar.close()
    save_checkpoint(run_dir, model, opt, total, cfg)
    model.eval()
    return save_model(run_dir, model, processor, cfg)


def read_dataset_all(cfg: TrainConfig) -> tuple[list[Annotation], list[str]]:
    if not cfg.data:
        raise TrainError("no dataset given (--data DIR)")
    anns, errors = [], []
    for d in cfg.data:
        a, e = read_dataset(d, skip_bad=cfg.skip_bad)
        anns.extend(a)
        errors.extend(e)
    if not anns:
        raise TrainError("every annotation was bad; nothing to train on")
    return anns, errors


def _bar(total: int, start: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, desc="sft")
