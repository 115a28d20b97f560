"""RLSD mechanics (training/rl/rlsd.py): reductions to GRPO, signs, bounds, the teacher."""

from __future__ import annotations

import torch

from training.rl.config import RLSDConfig
from training.rl.grpo import grpo_loss
from training.rl.rlsd import Teacher, lam_at, reweight


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(12, 9, generator=g).requires_grad_(True)
    tok = torch.randint(9, (12,), generator=g)
    adv = torch.tensor([1.5] * 4 + [-0.7] * 4 + [0.0] * 4)
    teacher = torch.log_softmax(torch.randn(12, 9, generator=g), -1).gather(-1, tok[:, None]).squeeze(-1)
    return logits, tok, adv, teacher


def _loss_and_grad(logits, tok, adv):
    logits.grad = None
    logp = torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
    loss, _ = grpo_loss(logp, logp.detach(), adv)
    loss.backward()
    return loss.detach(), logits.grad.clone(), logp


def test_lambda_zero_is_exactly_grpo():
    logits, tok, adv, teacher = _batch()
    l0, g0, logp = _loss_and_grad(logits, tok, adv)
    ahat, _ = reweight(adv, teacher, logp, 0.0, 0.2)
    assert torch.equal(ahat, adv)
    l1, g1, _ = _loss_and_grad(logits, tok, ahat)
    assert torch.equal(l0, l1) and torch.equal(g0, g1)


def test_teacher_equal_to_student_is_exactly_grpo():
    logits, tok, adv, _ = _batch(1)
    l0, g0, logp = _loss_and_grad(logits, tok, adv)
    ahat, st = reweight(adv, logp.detach().clone(), logp, 0.5, 0.2)  # Δ ≡ 0 → w ≡ 1
    assert st["delta_mean"] == 0.0
    assert torch.equal(ahat, adv)
    l1, g1, _ = _loss_and_grad(logits, tok, ahat)
    assert torch.equal(l0, l1) and torch.equal(g0, g1)


def test_sign_kept_weights_bounded_and_formula():
    for seed in range(5):
        logits, tok, adv, teacher = _batch(seed)
        logp = torch.log_softmax(logits, -1).gather(-1, tok[:, None]).squeeze(-1)
        lam, eps = 0.5, 0.2
        ahat, _ = reweight(adv, teacher, logp, lam, eps)
        assert torch.equal(torch.sign(ahat), torch.sign(adv))
        w = torch.where(adv != 0, (ahat / adv.where(adv != 0, torch.ones_like(adv)) - (1 - lam)) / lam,
                        torch.ones_like(adv))
        assert bool(((w >= 1 - eps - 1e-6) & (w <= 1 + eps + 1e-6)).all())
        delta = teacher - logp.detach()
        want = adv * ((1 - lam) + lam * torch.clamp(torch.exp(torch.sign(adv) * delta), 1 - eps, 1 + eps))
        assert torch.allclose(ahat, want)
        assert not ahat.requires_grad  # Δ is stop-gradient


def test_teacher_support_moves_credit_and_blame():
    """A > 0: the token the teacher favours gets more credit; A < 0: the one it disfavours more blame."""
    student = torch.log(torch.tensor([0.5, 0.5]))
    teacher = torch.log(torch.tensor([0.9, 0.1]))
    pos, _ = reweight(torch.tensor([1.0, 1.0]), teacher, student, 0.5, 0.2)
    assert pos[0] > pos[1] > 0
    neg, _ = reweight(torch.tensor([-1.0, -1.0]), teacher, student, 0.5, 0.2)
    assert neg[1] < neg[0] < 0


def test_lambda_schedule_decays_linearly_to_zero():
    cfg = RLSDConfig()
    assert lam_at(0, cfg) == 0.5 and lam_at(30, cfg) == 0.25 and lam_at(60, cfg) == 0.0 and lam_at(99, cfg) == 0.0


def test_teacher_is_frozen_gets_no_gradient_and_refreshes_every_20_steps():
    policy = torch.nn.Linear(3, 2)
    t = Teacher(policy, RLSDConfig())
    assert all(not p.requires_grad for p in t.model.parameters())
    x = torch.randn(4, 3)
    logp_t = torch.log_softmax(t.model(x), -1)[:, 0]
    logp_s = torch.log_softmax(policy(x), -1)[:, 0]
    ahat, _ = reweight(torch.ones(4), logp_t, logp_s, 0.5, 0.2)
    loss, _ = grpo_loss(logp_s, logp_s.detach(), ahat)
    loss.backward()
    assert all(p.grad is None for p in t.model.parameters())
    assert policy.weight.grad is not None
    with torch.no_grad():
        policy.weight.add_(1.0)
    assert not t.maybe_refresh(19, policy) and not torch.equal(t.model.weight, policy.weight)
    assert t.maybe_refresh(20, policy) and torch.equal(t.model.weight, policy.weight)
