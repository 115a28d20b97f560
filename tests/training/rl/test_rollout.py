"""Rollouts on the live context and the scoring the loss reads (training/rl/rollout.py, clips.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.backends.decoding import Sampling, sample
from training.rl import symbolstream as ss
from training.rl.config import RolloutConfig
from training.rl.rollout import Roller, log_dist, pieces, score_tokens


def _capture_logits(roller):
    seen = []
    orig = roller.ctx.logits

    def logits():
        a = orig()
        seen.append(a.copy())
        return a

    roller.ctx.logits = logits
    return seen


def test_the_loss_scores_the_distribution_that_was_sampled(ss_model):
    """For every sampled decision token: log π from the scoring forward (no cache, whole sequence) equals
    log π of the logits the live decoder sampled from (cached, incremental), banned tokens removed."""
    model, tok = ss_model
    torch.manual_seed(0)
    for p in model.parameters():  # a noisier policy: some decisions are rewritten by normalisation
        p.data.add_(0.3 * torch.randn_like(p))
    cfg = RolloutConfig()
    roller = Roller(model, ss.processor(tok), cfg)
    w = ss.episode(7, 10, tok).window
    checked = rewritten = 0
    for seed in range(3):
        seen = _capture_logits(roller)
        r = roller.roll(w, seed)
        del roller.ctx.logits
        live = {}
        k = 0
        for d in r.decided:
            for j, t in enumerate(d.sampled):
                live[d.start - 1 + j] = float(log_dist(torch.from_numpy(seen[k])[None], cfg, roller.ctx.banned)[0, t])
                k += 1
        assert k == len(seen)
        lp, _, _ = score_tokens(model, [r], cfg, roller.ctx.banned)
        at = [a for p in pieces(r) for a in p.at]
        assert sorted(at) == sorted(live)
        for a, v in zip(at, lp.tolist(), strict=True):
            assert abs(v - live[a]) < 1e-4
            checked += 1
        rewritten += len(pieces(r)) - 1
    assert checked > 30


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.7), (6, 0.8)])
def test_truncation_is_the_decoders(top_k, top_p):
    """Empirical frequencies of decoding.sample match exp(log_dist) with the same settings."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(12, generator=g) * 2
    cfg = RolloutConfig(temperature=0.9, top_k=top_k, top_p=top_p)
    p = log_dist(logits[None], cfg, [3]).exp()[0].numpy()
    rng = np.random.default_rng(0)
    draws = np.zeros(12)
    lg = logits.numpy().copy()
    lg[3] = -np.inf
    for _ in range(4000):
        draws[sample(lg.copy(), Sampling(0.9, top_p, top_k), rng)] += 1
    assert np.all((draws > 0) <= (p > 0))  # nothing outside the support is ever drawn
    assert np.abs(draws / draws.sum() - p).max() < 0.03


def test_a_wrong_early_decision_changes_what_later_ticks_see(ss_model):
    model, tok = ss_model
    roller = Roller(model, ss.processor(tok), RolloutConfig())
    ep = ss.episode(3, 8, tok)
    gold = roller.roll(ep.window, 0, forced=ep.gold)
    other = list(ep.gold)
    other[0] = "</response> X"
    changed = roller.roll(ep.window, 0, forced=other)
    assert gold.ids != changed.ids
    assert changed.decided[1].start > gold.decided[1].start  # tick 1 sits after the longer committed reply


def test_clip_windows_replay_the_recorded_live_layout(tiny25, small_suite):
    """A window rolled out with the gold decisions on a real TorchContext holds exactly the ids and
    M-RoPE positions the SFT layout recorded for that chunk (training/episodes.py)."""
    from engine.session import SessionOptions
    from training.dataset import read_dataset
    from training.episodes import layout_clip
    from training.rl.clips import clip_windows
    from training.trainer import TrainConfig, load_for_training

    model, processor, _ = load_for_training(TrainConfig(model=str(tiny25)))
    anns, _ = read_dataset(small_suite)
    ann = anns[0]
    ws = clip_windows(model, processor, [ann], random.Random(0), (8, 12))
    assert ws and all(8 <= w.duration <= 12 for w in ws)
    chunks = layout_clip(model, processor, ann, SessionOptions())
    roller = Roller(model, processor, RolloutConfig())
    gold = ann.decisions()
    for w in ws:
        r = roller.roll(w, 0, forced=[gold[w.t0 + i] for i in range(w.duration)])
        chunk = next(c for c in chunks if w.t0 in c.labels)
        end = chunk.labels[w.t0 + w.duration - 1][1]
        rec = [i for s in chunk.segments for i in s.ids][:end]
        pos = torch.cat([s.positions for s in chunk.segments], dim=1)[:, :end]
        assert r.ids[:end] == rec
        assert torch.equal(r.positions[:, :end], pos)
        assert [d.start for d in r.decided] == [chunk.labels[w.t0 + i][0] for i in range(w.duration)]
    w = ws[0]  # sampled on the VLM: the scoring forward (frames, M-RoPE positions) reads the live distribution
    seen = _capture_logits(roller)
    r = roller.roll(w, 1)
    del roller.ctx.logits
    lp, _, _ = score_tokens(model, [r], roller.cfg, roller.ctx.banned)
    live = [float(log_dist(torch.from_numpy(x)[None], roller.cfg, roller.ctx.banned)[0, t])
            for x, t in zip(seen, [t for d in r.decided for t in d.sampled], strict=True)]
    by_at = dict(zip([a for p in pieces(r) for a in p.at], lp.tolist(), strict=True))
    at = [d.start - 1 + j for d in r.decided for j in range(len(d.sampled))]
    assert len(at) == len(live) > 0
    assert max(abs(by_at[a] - v) for a, v in zip(at, live, strict=True)) < 1e-3
