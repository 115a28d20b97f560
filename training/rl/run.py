"""A GRPO run from its settings: load the SFT checkpoint, cut the windows, train (``presence train grpo``).

``data`` is dataset folders (answer-centred windows of their clips, laid out by training/episodes.py;
the held-out windows come from ``heldout`` folders, else every fifth clip), or ``["symbolstream"]``: the
synthetic proxy (training/rl/symbolstream.py), whose checkpoint ``make_symbolstream_sft`` writes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from training.rl.config import RLConfig
from training.rl.trainer import GRPOTrainer, RLError

SYMBOLSTREAM = "symbolstream"
SS_TRAIN_SEEDS = range(10_000, 10_256)  # the proxy's training episodes
SS_HELD_SEEDS = range(90_000, 90_032)  # held out: never trained on


def make_symbolstream_sft(out: str | Path, steps: int = 150, ticks: int = 12, seed: int = 0, lr: float = 3e-3,
                          threads: int = 0) -> Path:
    """A tiny SymbolStream model after ``steps`` of weighted SFT on gold episodes (its own seeds)."""
    import torch

    from training.rl import symbolstream as ss

    if threads > 0:
        torch.set_num_threads(threads)  # a tiny model on a busy machine: one thread is fastest
    torch.manual_seed(seed)
    tok = ss.tokenizer()
    model = ss.tiny_model(tok, seed)
    ss.sft(model, tok, ss.episodes(range(seed * 1000, seed * 1000 + 64), ticks, tok), steps, lr, seed)
    return ss.save(model.eval(), tok, out)


def setup(cfg: RLConfig, heldout: list[str] | None = None, ticks: int = 12, progress: Callable | None = None):
    """(model, processor, device, train windows, held-out windows) for ``cfg``."""
    if cfg.data == [SYMBOLSTREAM]:
        from training.rl import symbolstream as ss

        if not ss.is_symbolstream(cfg.init):
            raise RLError(f"{cfg.init}: not a SymbolStream checkpoint (make one with --init-symbolstream)")
        model, tok = ss.load(cfg.init)
        m = cfg.rlsd.hint_marker
        train = [e.window for e in ss.episodes(SS_TRAIN_SEEDS, ticks, tok, m)]
        held = [e.window for e in ss.episodes(SS_HELD_SEEDS, ticks, tok, m)]
        return model.train(), ss.processor(tok), "cpu", train, held
    from training.config import TrainConfig
    from training.dataset import DatasetError
    from training.rl.clips import clip_windows
    from training.trainer import TrainError, _base, load_for_training, read_dataset_all

    tcfg = TrainConfig(model=cfg.init, data=list(cfg.data), seed=cfg.seed, mode=cfg.mode, window=cfg.window)
    try:
        anns, _ = read_dataset_all(tcfg)
        held_anns = read_dataset_all(TrainConfig(data=list(heldout)))[0] if heldout else anns[4::5]
        train_anns = anns if heldout else [a for i, a in enumerate(anns) if i % 5 != 4]
        model, processor, device = load_for_training(tcfg)
    except (DatasetError, TrainError) as exc:
        raise RLError(str(exc)) from None
    rng = random.Random(cfg.seed)
    base = _base(model)
    train = clip_windows(base, processor, train_anns, rng, cfg.window, cfg.mode, cfg.rlsd.hint_marker)
    held = clip_windows(base, processor, held_anns, rng, cfg.window, cfg.mode, cfg.rlsd.hint_marker)
    if progress:
        progress(f"{len(train)} training windows, {len(held)} held-out windows")
    return model, processor, device, train, held


def train_grpo(cfg: RLConfig, resume: bool = False, heldout: list[str] | None = None, bar: bool = True,
               progress: Callable | None = print, objective: str = "grpo") -> dict:
    """Run GRPO (with the switches in ``cfg``); returns the held-out figures of the final policy."""
    import torch

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model, processor, device, train, held = setup(cfg, heldout, progress=progress)
    held = held[:cfg.eval_windows] if cfg.eval_windows > 0 else held
    trainer = GRPOTrainer(cfg, model, processor, train, held, device, objective)
    out = trainer.run(cfg.out, resume=resume, bar=bar, progress=progress)
    if cfg.data == [SYMBOLSTREAM]:
        (Path(cfg.out) / "model" / "symbolstream").write_text("a SymbolStream proxy model\n")
    return out
