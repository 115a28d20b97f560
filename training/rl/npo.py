"""NPO (Near-Future Policy Optimization) and AutoNPO.

NPO: where a window's group success rate p̂ ≤ τ (0.6), one *incorrect* rollout is replaced by a
verified-correct trajectory of a later checkpoint of the same run (the guide); the group statistics
are then taken over the mixed group, so an all-wrong group, which gives GRPO no signal, gives the
guide a positive advantage. No importance correction (the paper drops it): the guide's tokens are
scored under the current policy like any rollout, so its first ratio is 1 as well.

AutoNPO: when the reward's moving average stalls while the policy entropy falls, pick the rollback
distance Δ that maximises Q̂(Δ)/V̂(Δ) — Q̂: the share of the windows the past policy π_{t−Δ} fails that
the current policy (the guide) solves; V̂: the variance of the guide trajectories' length-normalised
importance weights exp(mean log π_{t−Δ} − log π_t), plus a floor — then roll weights, optimizer
state and RNG back to π_{t−Δ} exactly and re-train from there with the guide's trajectories.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from training.rl.config import AutoNPOConfig
from training.trainer import _rng_state as rng_state  # the SFT trainer's: torch, Python and NumPy RNGs
from training.trainer import _set_rng_state as set_rng_state


def inject(group: list, success: list[bool], guide, gate: float) -> tuple[list, int | None]:
    """(the group with at most one incorrect member replaced by ``guide``, the replaced index or None).
    Only when p̂ = mean(success) ≤ gate and a guide is given (the caller gives only verified ones)."""
    if guide is None or not group or gate < 0:
        return group, None
    if sum(success) / len(success) > gate:
        return group, None
    wrong = [i for i, ok in enumerate(success) if not ok]
    if not wrong:
        return group, None
    i = wrong[-1]
    out = list(group)
    out[i] = guide
    return out, i


# --- exact snapshots --------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Weights, optimizer state and RNG state at one policy step, copied (restoring is bit-exact)."""

    step: int
    weights: dict
    optimizer: dict
    rng: dict
    extra: dict = field(default_factory=dict)

    @classmethod
    def take(cls, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, extra: dict | None = None):
        return cls(step, {k: v.detach().clone() for k, v in model.state_dict().items()},
                   copy.deepcopy(opt.state_dict()), rng_state(), copy.deepcopy(extra or {}))

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
        with torch.no_grad():
            model.load_state_dict(self.weights)
        opt.load_state_dict(copy.deepcopy(self.optimizer))
        set_rng_state(self.rng)
        return copy.deepcopy(self.extra)


# --- AutoNPO -------------------------------------------------------------------------------------


class PlateauMonitor:
    """EMAs of the mean reward and mean token entropy; ``fires`` on the exploration-collapse signature."""

    def __init__(self, cfg: AutoNPOConfig):
        self.cfg = cfg
        self.reward: list[float] = []
        self.entropy: list[float] = []
        self.last_fire = -10**9
        self.since = 0  # where the current run of rewards began (the last intervention)

    def update(self, reward: float, entropy: float) -> None:
        b = self.cfg.ema
        self.reward.append(reward if not self.reward else b * self.reward[-1] + (1 - b) * reward)
        self.entropy.append(entropy if not self.entropy else b * self.entropy[-1] + (1 - b) * entropy)

    def fires(self) -> bool:
        w, n = self.cfg.window, len(self.reward)
        if n < 2 * w + 1 or n - self.last_fire < self.cfg.min_gap:
            return False
        r, e = self.reward[self.since:], self.entropy
        # An EMA approaches a plateau geometrically, so "slope below a tenth of the previous window's"
        # never holds; compare the last window's rise with the whole rise since the last intervention.
        stalled = r[-1] - r[-1 - w] <= self.cfg.slope_ratio * (max(r) - min(r)) if len(r) > w else False
        dropped = e[-1] <= (1 - self.cfg.entropy_drop) * e[-1 - w]
        if stalled and dropped:
            self.last_fire = self.since = n
            return True
        return False

    def state(self) -> dict:
        return {"reward": list(self.reward), "entropy": list(self.entropy), "last_fire": self.last_fire,
                "since": self.since}

    def load(self, s: dict) -> None:
        self.reward, self.entropy, self.last_fire = list(s["reward"]), list(s["entropy"]), s["last_fire"]
        self.since = s["since"]


def q_hat(past_fails: list[bool], guide_solves: list[bool]) -> float:
    """Of the mistake-pool windows the past policy fails, the share the guide solves."""
    failed = [g for f, g in zip(past_fails, guide_solves, strict=True) if f]
    return sum(failed) / len(failed) if failed else 0.0


def v_hat(log_ratios: list[torch.Tensor], floor: float) -> float:
    """Variance of w(o) = exp(mean_t [log π_past(o_t) − log π_guide(o_t)]) over guide trajectories, + floor."""
    if not log_ratios:
        return floor
    w = torch.stack([torch.exp(lr.double().mean()) for lr in log_ratios])
    return float(w.var(unbiased=False)) + floor


def rollback_candidates(step: int, saved, deltas) -> list[int]:
    """The rollback distances on offer at ``step``: for each wanted Δ, the distance to the newest saved
    snapshot at least Δ back. Snapshots are taken every N steps but a plateau is detected at any step,
    so ``step − Δ`` itself is usually not a snapshot."""
    out = set()
    for d in deltas:
        older = [s for s in saved if s <= step - d]
        if older:
            out.add(step - max(older))
    return sorted(out)


def best_delta(candidates: dict[int, tuple[float, float]]) -> int | None:
    """Δ* = argmax Q̂/V̂ over {Δ: (Q̂, V̂)}; the nearer Δ on a tie; None when no Δ has Q̂ > 0."""
    scored = [(q / v, -d, d) for d, (q, v) in candidates.items() if q > 0]
    return max(scored)[2] if scored else None
