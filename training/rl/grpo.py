"""GRPO's two pieces: group-normalised advantages and the clipped token-mean surrogate.

Tokens are flat: every decision token of every rollout in the batch is one entry, so the mean over
entries is TRL's ``loss_type="dapo"`` token mean (each token counts once, long decisions are not
down-weighted). Observation and context tokens never appear here.

    A_i   = (r_i − mean_G r) / (std_G r + ε)             per group of G rollouts (Dr.GRPO: no std)
    ρ_t   = exp(log π_θ(y_t) − log π_old(y_t))            π_old = the policy that sampled: ρ = 1 exactly
    ℓ_t   = −min(ρ_t Â_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â_t)   + β·k3(π_ref, π_θ)  (β = 0 by default)
    L     = Σ_t ℓ_t / #tokens
"""

from __future__ import annotations

import torch

from training.rl.config import GRPOConfig


def group_advantages(rewards: torch.Tensor, group: int, cfg: GRPOConfig | None = None) -> torch.Tensor:
    """rewards [N] with N = groups × ``group`` (a group's rollouts adjacent) → advantages [N]."""
    cfg = cfg or GRPOConfig()
    r = rewards.view(-1, group).double()  # [B, G]
    a = r - r.mean(dim=1, keepdim=True)
    if cfg.scale_by_std:
        a = a / (r.std(dim=1, keepdim=True) + cfg.adv_eps)  # unbiased std, as TRL
    return a.view(-1).to(rewards.dtype)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, cfg: GRPOConfig | None = None,
              ref_logp: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """logp, old_logp, adv, ref_logp: [M] per decision token (adv already per token: A_i, or RLSD's Â_t).
    Returns (loss, stats)."""
    cfg = cfg or GRPOConfig()
    if logp.numel() == 0:
        return logp.sum() * 0.0, {"clip_frac": 0.0}
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1 - cfg.clip_low, 1 + cfg.clip_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)
    if cfg.kl_coef and ref_logp is not None:
        d = ref_logp - logp
        per_token = per_token + cfg.kl_coef * (torch.exp(d) - d - 1)  # k3 estimator (TRL)
    clip_frac = ((ratio < 1 - cfg.clip_low) | (ratio > 1 + cfg.clip_high)).float().mean().item()
    return per_token.mean(), {"clip_frac": clip_frac}
