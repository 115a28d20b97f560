"""NPO / AutoNPO mechanics (training/rl/npo.py): the gate, the guide slot, the trigger, exact rollback."""

from __future__ import annotations

import random

import numpy as np
import torch

from training.rl.config import AutoNPOConfig, GRPOConfig
from training.rl.grpo import group_advantages
from training.rl.npo import PlateauMonitor, Snapshot, best_delta, inject, q_hat, rollback_candidates, v_hat


def test_gate_off_leaves_the_group_as_grpo_sees_it():
    group, ok = list("abcdefgh"), [False] * 8
    out, idx = inject(group, ok, "GUIDE", gate=-1.0)
    assert out == group and idx is None


def test_injection_only_when_gated_and_verified():
    group = list("abcdefgh")
    many_ok = [True] * 6 + [False] * 2  # p̂ = 0.75 > 0.6
    assert inject(group, many_ok, "GUIDE", 0.6) == (group, None)
    few_ok = [True] * 4 + [False] * 4  # p̂ = 0.5 ≤ 0.6
    assert inject(group, few_ok, None, 0.6) == (group, None)  # no verified guide: nothing
    out, idx = inject(group, few_ok, "GUIDE", 0.6)
    assert idx is not None and not few_ok[idx] and out.count("GUIDE") == 1  # one guide, on an incorrect slot
    assert [x for i, x in enumerate(out) if i != idx] == [x for i, x in enumerate(group) if i != idx]


def test_at_most_one_guide_per_group_even_when_all_wrong():
    out, idx = inject(list(range(8)), [False] * 8, "GUIDE", 0.6)
    assert out.count("GUIDE") == 1 and idx is not None


def test_all_wrong_group_plus_guide_gives_the_guide_a_positive_advantage():
    rewards = torch.zeros(8)
    assert torch.equal(group_advantages(rewards, 8), torch.zeros(8))  # GRPO: no signal
    group, idx = inject(list(range(8)), [False] * 8, "GUIDE", 0.6)
    mixed = rewards.clone()
    mixed[idx] = 2.0  # the guide's verified reward
    a = group_advantages(mixed, 8, GRPOConfig())
    sd = mixed.std().item()
    assert abs(a[idx].item() - (2.0 - 2.0 / 8) / (sd + 1e-4)) < 1e-5 and a[idx] > 0
    assert all(a[i] < 0 for i in range(8) if i != idx)


def _monitor(rewards, entropies, **kw):
    m = PlateauMonitor(AutoNPOConfig(window=10, min_gap=20, **kw))
    fired = []
    for i, (r, e) in enumerate(zip(rewards, entropies, strict=True)):
        m.update(r, e)
        if m.fires():
            fired.append(i)
    return fired


def test_autonpo_fires_on_plateau_with_entropy_drop():
    rewards = [min(i, 40) / 40 for i in range(90)]  # rises, then flat from step 40
    entropies = [1.0 if i < 45 else max(0.3, 1.0 - 0.03 * (i - 45)) for i in range(90)]
    fired = _monitor(rewards, entropies)
    assert fired and fired[0] > 40


def test_autonpo_does_not_fire_on_rising_reward_or_flat_reward_with_stable_entropy():
    n = 90
    assert _monitor([i / n for i in range(n)], [1.0 - 0.008 * i for i in range(n)]) == []  # rising
    assert _monitor([0.5] * n, [1.0] * n) == []  # flat, entropy stable


def test_q_and_v_estimates_and_interior_delta():
    assert q_hat([True, True, False, True], [True, False, True, True]) == 2 / 3
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(6, generator=g) for _ in range(20)]
    v = [v_hat([b * s for b in base], 0.05) for s in (0.1, 0.5, 1.0)]
    assert v[0] < v[1] < v[2]  # V̂ grows with the distance between the policies
    assert v_hat([], 0.05) == 0.05
    assert best_delta({10: (0.2, 0.06), 20: (0.6, 0.08), 30: (0.65, 0.6)}) == 20  # Q saturates, V grows
    assert best_delta({10: (0.0, 0.06)}) is None


def test_rollback_candidates_exist_between_snapshot_steps():
    """A plateau at step 19 with snapshots every 4 steps: each wanted Δ maps to the newest snapshot at least Δ
    back (step − Δ itself is no snapshot); on a snapshot step the wanted Δs come back unchanged."""
    assert rollback_candidates(19, {8: 0, 12: 0, 16: 0}, (4, 8, 12)) == [7, 11]
    assert rollback_candidates(16, {4: 0, 8: 0, 12: 0, 16: 0}, (4, 8, 12)) == [4, 8, 12]
    assert rollback_candidates(3, {}, (4, 8)) == []


def test_rollback_restores_weights_optimizer_and_rng_bit_for_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def train(k):
        for _ in range(k):
            x = torch.randn(5, 4)
            loss = model(x).pow(2).mean() + random.random() + float(np.random.rand())
            opt.zero_grad()
            loss.backward()
            opt.step()

    train(3)
    snap = Snapshot.take(3, model, opt)
    draws = (torch.rand(3), random.random(), np.random.rand())
    train(4)
    after = {k: v.clone() for k, v in model.state_dict().items()}
    snap.restore(model, opt)
    assert all(torch.equal(v, snap.weights[k]) for k, v in model.state_dict().items())
    st, ss = opt.state_dict(), snap.optimizer
    for k in ss["state"]:
        for name, val in ss["state"][k].items():
            assert torch.equal(st["state"][k][name], val)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(draws[0], again[0]) and draws[1:] == again[1:]
    snap.restore(model, opt)
    torch.rand(3), random.random(), np.random.rand()  # the same draws as the first time
    train(4)  # the same steps again give the same weights, bit for bit
    assert all(torch.equal(v, after[k]) for k, v in model.state_dict().items())
