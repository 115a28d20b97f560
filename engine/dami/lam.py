"""λ(q): buckets, the zero-shot DAMI-style estimator (confidence + Instruct/Thinking discrepancy) and the
trained DAMI-style estimator (pairwise preferences: accuracy first, then fewer tokens).

Both are reconstructions of the paper's "DAMI-Conf" and "DAMI-Pref" from its abstract
(docs/dami.md describes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

# dense around the 0.4–0.6 phase transition seen on Qwen3-4B 2507 pairs (arXiv 2510.10977)
from engine.dami.options import BUCKETS  # noqa: E402 - the λ values served


def snap(lam: float, buckets: Sequence[float] = BUCKETS) -> float:
    """The nearest bucket; a tie goes to the larger λ (more thinking is the safer error)."""
    return min(buckets, key=lambda b: (abs(b - lam), -b))


def choose_lambda(options, estimate: Callable[[], tuple[float, float | None]]) -> tuple[float, float | None]:
    """(λ, u(q)) for one answer, chosen before prefill: the fixed λ snapped to the buckets, or the
    estimator's (``estimate``, called only in auto mode)."""
    if options.lam_mode == "fixed":
        return snap(options.lam, options.buckets), None
    return estimate()


def uncertainty(confidence: float, discrepancy: float, gamma: float = 1.0) -> float:
    """u(q) = 1 − c_I·exp(−γ·D): low when the Instruct model is sure and the Thinking model agrees."""
    return 1.0 - confidence * math.exp(-gamma * discrepancy)


@dataclass
class ZeroShotLambda:
    """Maps u(q) to λ linearly between two calibrated quantiles, then snaps to buckets."""

    u_lo: float = 0.05  # u at or below this → λ = 0
    u_hi: float = 0.6  # u at or above this → λ = 1
    buckets: tuple[float, ...] = BUCKETS

    def __call__(self, u: float) -> float:
        span = max(self.u_hi - self.u_lo, 1e-9)
        return snap(min(1.0, max(0.0, (u - self.u_lo) / span)), self.buckets)

    @classmethod
    def calibrate(cls, us: Sequence[float], lo_q: float = 0.2, hi_q: float = 0.9,
                  buckets: tuple[float, ...] = BUCKETS) -> ZeroShotLambda:
        """u_lo, u_hi from quantiles of u on a calibration set (lower lo_q → fewer questions at λ = 0)."""
        t = torch.tensor(list(us), dtype=torch.float64)
        lo, hi = torch.quantile(t, lo_q).item(), torch.quantile(t, hi_q).item()
        if hi - lo < 1e-6:
            hi = lo + 1e-6
        return cls(lo, hi, buckets)


# --- trained (DAMI-Pref style) -----------------------------------------------------------------------
def preference_pairs(acc: Mapping[float, float], tokens: Mapping[float, float], eps: float = 0.05
                     ) -> list[tuple[float, float]]:
    """(winner λ, loser λ): higher accuracy wins; within ε, fewer tokens wins."""
    pairs = []
    lams = sorted(acc)
    for a in lams:
        for b in lams:
            if a == b:
                continue
            if acc[a] > acc[b] + eps or (abs(acc[a] - acc[b]) <= eps and tokens[a] < tokens[b]):
                pairs.append((a, b))
    return pairs


class PrefEstimator(torch.nn.Module):
    """g(h(q), λ): a 2-layer MLP on the Instruct model's pooled prefill state plus a λ embedding,
    trained Bradley–Terry on preference pairs; λ(q) = argmax over the buckets."""

    def __init__(self, dim: int, buckets: Sequence[float] = BUCKETS, hidden: int = 64):
        super().__init__()
        self.buckets = tuple(float(b) for b in buckets)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.lam_emb = torch.nn.Embedding(len(self.buckets), hidden)
        self.inp = torch.nn.Linear(dim, hidden)
        self.out = torch.nn.Sequential(torch.nn.GELU(), torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, 1))

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """[n, dim] → [n, buckets]."""
        z = self.inp((h - self.mean) / self.std)  # [n, hidden]
        z = z[:, None, :] + self.lam_emb.weight[None]  # [n, B, hidden]
        return self.out(z).squeeze(-1)

    @torch.no_grad()
    def predict(self, h: torch.Tensor) -> list[float]:
        h = h.reshape(-1, self.mean.numel()).float()
        return [self.buckets[i] for i in self.scores(h).argmax(-1).tolist()]

    def fit(self, hs: torch.Tensor, accs: Sequence[Mapping[float, float]], toks: Sequence[Mapping[float, float]],
            eps: float = 0.05, epochs: int = 300, lr: float = 3e-3, seed: int = 0, acc_weight: float = 1.0
            ) -> float:
        """Bradley–Terry on every preference pair of every query; returns the final loss.

        ``acc_weight``: weight of a pair decided by accuracy against one decided by tokens. At 1 the
        estimator picks what most queries like this one prefer; above 1 a failure that only some of them
        suffer outweighs the tokens the others would save (accuracy first across queries, too)."""
        torch.manual_seed(seed)
        hs = hs.float()
        self.mean.copy_(hs.mean(0))
        self.std.copy_(hs.std(0).clamp_min(1e-6))
        idx = {b: i for i, b in enumerate(self.buckets)}
        q, w, lo, wt = [], [], [], []
        for n, (a, t) in enumerate(zip(accs, toks, strict=True)):
            for win, lose in preference_pairs(a, t, eps):
                q.append(n)
                w.append(idx[win])
                lo.append(idx[lose])
                wt.append(acc_weight if a[win] > a[lose] + eps else 1.0)
        if not q:
            return 0.0
        q_t, w_t, l_t, wt_t = torch.tensor(q), torch.tensor(w), torch.tensor(lo), torch.tensor(wt)
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-3)
        loss = torch.tensor(0.0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a tiny MLP: on 2 busy cores extra threads made it 15x slower, not faster
        try:
            for _ in range(epochs):
                s = self.scores(hs)
                loss = -(wt_t * torch.nn.functional.logsigmoid(s[q_t, w_t] - s[q_t, l_t])).sum() / wt_t.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            torch.set_num_threads(threads)
        return float(loss.detach())

    def save(self, path: str | Path) -> None:
        torch.save({"dim": self.mean.numel(), "buckets": self.buckets, "hidden": self.inp.out_features,
                    "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path) -> PrefEstimator:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        est = cls(int(blob["dim"]), blob["buckets"], int(blob["hidden"]))
        est.load_state_dict(blob["state"])
        return est.eval()
