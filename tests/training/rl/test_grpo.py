"""GRPO mechanics: advantages, the clipped token-mean loss, the first ratio (training/rl/grpo.py)."""

from __future__ import annotations

import torch

from training.rl.config import GRPOConfig
from training.rl.grpo import group_advantages, grpo_loss


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    a = group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 0.0]).std().item()  # unbiased, as TRL
    assert torch.allclose(a[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]) / (std + 1e-4))
    assert torch.equal(a[4:], torch.zeros(4))  # equal rewards: no signal
    dr = group_advantages(r, 4, GRPOConfig(scale_by_std=False))
    assert torch.allclose(dr[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_equal_rewards_give_zero_gradient():
    logp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    adv = group_advantages(torch.tensor([0.3, 0.3, 0.3, 0.3]), 4)[[0, 1, 2]]
    loss, _ = grpo_loss(logp, logp.detach(), adv)
    loss.backward()
    assert torch.equal(logp.grad, torch.zeros(3))


def test_clipped_loss_matches_the_formula_on_fixed_tensors():
    """−min(ρA, clip(ρ, 1−0.2, 1+0.28)A), token mean — TRL's "dapo" definition, written out."""
    logp = torch.log(torch.tensor([0.5, 0.9, 0.1, 0.4]))
    old = torch.log(torch.tensor([0.25, 0.5, 0.2, 0.4]))  # ρ = 2.0, 1.8, 0.5, 1.0
    adv = torch.tensor([1.0, -1.0, -2.0, 0.5])
    loss, stats = grpo_loss(logp, old, adv)
    rho = torch.tensor([2.0, 1.8, 0.5, 1.0])
    want = -torch.minimum(rho * adv, rho.clamp(0.8, 1.28) * adv).mean()
    assert torch.allclose(loss, want)
    assert stats["clip_frac"] == 0.75
    hand = -(1.28 * 1.0 + 1.8 * -1.0 + 0.8 * -2.0 + 1.0 * 0.5) / 4  # per token, the binding side
    assert abs(loss.item() - hand) < 1e-6


def test_first_ratio_is_exactly_one_and_the_gradient_is_policy_gradient():
    logits = torch.randn(5, 7, requires_grad=True)
    tok = torch.tensor([1, 2, 3, 4, 5])
    logp = torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
    adv = torch.tensor([1.0, -0.5, 2.0, 0.0, -1.0])
    loss, stats = grpo_loss(logp, logp.detach(), adv)
    assert stats["clip_frac"] == 0.0
    loss.backward()
    g1 = logits.grad.clone()
    logits.grad = None
    (-(adv * torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)).mean()).backward()
    assert torch.allclose(g1, logits.grad)  # ρ ≡ 1: the surrogate's gradient is −A ∇log π, token mean


def test_no_kl_by_default_and_k3_when_asked():
    logp = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-1.5, -1.0])
    adv = torch.zeros(2)
    assert grpo_loss(logp, logp, adv, ref_logp=ref)[0].item() == 0.0
    d = ref - logp
    want = (0.1 * (torch.exp(d) - d - 1)).mean()
    assert torch.allclose(grpo_loss(logp, logp, adv, GRPOConfig(kl_coef=0.1), ref_logp=ref)[0], want)
