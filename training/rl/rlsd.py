"""RLSD: the same model, shown the answer, weights each token's share of the sequence advantage.

On the student's own sampled tokens (iie-ycx/RLSD, ``_build_stgca_advantages``)::

    Δ_t = stop-grad(log P_teacher(y_t) − log P_student(y_t))      teacher: the annotation in its context
    Â_t = A · ((1 − λ) + λ · clip(exp(sign(A)·Δ_t), 1 − ε_w, 1 + ε_w))

The weight is positive, so sign(Â_t) = sign(A): the reward alone sets the direction, the teacher only
the magnitude (the paper's reason it does not leak the hint). λ decays linearly from 0.5 to 0 over 60
steps; the teacher is a frozen copy refreshed from the policy every 20 steps and never gets gradients.
"""

from __future__ import annotations

import copy

import torch

from training.rl.config import RLSDConfig


def lam_at(step: int, cfg: RLSDConfig) -> float:
    """λ at optimizer step ``step`` (0-based): cfg.lam · max(0, 1 − step / decay_steps)."""
    if cfg.decay_steps <= 0:
        return cfg.lam
    return cfg.lam * max(0.0, 1.0 - step / cfg.decay_steps)


def reweight(adv: torch.Tensor, teacher_logp: torch.Tensor, student_logp: torch.Tensor, lam: float,
             eps_w: float) -> tuple[torch.Tensor, dict]:
    """adv, teacher_logp, student_logp: [M] per decision token → (Â [M], stats). Both log-probs are
    detached here: Δ carries no gradient to either model."""
    delta = (teacher_logp.detach() - student_logp.detach())
    w = torch.exp(torch.sign(adv) * delta)
    wc = torch.clamp(w, 1 - eps_w, 1 + eps_w)
    ahat = adv * ((1 - lam) + lam * wc)
    n = max(1, delta.numel())
    stats = {"delta_mean": float(delta.mean()) if delta.numel() else 0.0,
             "w_mean": float(wc.mean()) if delta.numel() else 1.0,
             "clip_low_frac": float((w < 1 - eps_w).sum()) / n, "clip_high_frac": float((w > 1 + eps_w).sum()) / n}
    return ahat.detach(), stats


class Teacher:
    """A frozen copy of the policy: ``requires_grad`` off on every parameter, eval mode, refreshed by
    copying the policy's weights every ``refresh_every`` steps."""

    def __init__(self, policy: torch.nn.Module, cfg: RLSDConfig):
        self.cfg = cfg
        self.model = copy.deepcopy(policy).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def maybe_refresh(self, step: int, policy: torch.nn.Module) -> bool:
        if self.cfg.refresh_every > 0 and step > 0 and step % self.cfg.refresh_every == 0:
            with torch.no_grad():
                self.model.load_state_dict(policy.state_dict())
            return True
        return False
