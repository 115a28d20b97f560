"""The GRPO loop (training/rl/trainer.py): resume, NPO reductions and injection, the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from training.rl import symbolstream as ss
from training.rl.config import RLConfig, RLSDConfig, RolloutConfig
from training.rl.trainer import GRPOTrainer


def _trainer(ss_sft, steps=3, rlsd=False, **kw):
    model, tok = ss.load(ss_sft)
    train = [e.window for e in ss.episodes(range(500, 508), 8, tok)]
    cfg = RLConfig(steps=steps, lr=1e-3, save_every=0, rollout=RolloutConfig(group=4, max_tokens=12),
                   rlsd=RLSDConfig(enabled=rlsd), **kw)
    return GRPOTrainer(cfg, model.train(), ss.processor(tok), train, []), model


def test_an_interrupted_run_resumes_bit_exactly(ss_sft, tmp_path):
    a, ma = _trainer(ss_sft, rlsd=True)  # RLSD on: the teacher's state travels too
    a.run(tmp_path / "a", bar=False)
    b, _ = _trainer(ss_sft, rlsd=True)
    with pytest.raises(KeyboardInterrupt):
        b.run(tmp_path / "b", bar=False, stop_after=1)
    c, mc = _trainer(ss_sft, rlsd=True)
    c.run(tmp_path / "b", resume=True, bar=False)
    sa, sc = ma.state_dict(), mc.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)

    def lines(p):
        return [{k: v for k, v in json.loads(x).items() if k != "wall_s"} for x in (p / "metrics.jsonl").open()]

    assert lines(tmp_path / "a") == lines(tmp_path / "b") and len(lines(tmp_path / "a")) == 3
    assert "lam" in lines(tmp_path / "a")[0]


def test_npo_with_the_gate_off_is_exactly_grpo(ss_sft, tmp_path):
    plain, mp = _trainer(ss_sft, steps=1)
    gated, mg = _trainer(ss_sft, steps=1)
    gated.cfg.npo.gate = -1.0
    gated.guide_model, gated.guide_until = copy.deepcopy(mg), 10
    plain.run(tmp_path / "p", bar=False)
    gated.run(tmp_path / "g", bar=False)
    assert gated.guides == {}
    sp, sg = mp.state_dict(), mg.state_dict()
    assert all(torch.equal(sp[k], sg[k]) for k in sp)


def test_guides_are_verified_one_per_gated_group_on_an_incorrect_slot(ss_sft):
    tr, model = _trainer(ss_sft, windows_per_step=4)
    tr.guide_model, tr.guide_until = copy.deepcopy(model).eval(), 10
    tr.cfg.npo.guide_tries = 8
    rollouts, injected = tr.collect(0)
    G = tr.cfg.rollout.group
    seen = 0
    for k in range(0, len(rollouts), G):
        grp = rollouts[k:k + G]
        guides = [r for r in grp if r.guide]
        assert len(guides) <= 1
        if guides:
            seen += 1
            assert guides[0].outcome.success
            assert sum(r.outcome.success for r in grp if not r.guide) / G <= tr.cfg.npo.gate
    assert seen == injected
    assert all(g is None or g.outcome.success for g in tr.guides.values())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", "train", "grpo", *args], capture_output=True, text=True,
                          timeout=600)


def test_cli_runs_writes_metrics_and_model(tmp_path):
    out = tmp_path / "run"
    r = _cli("--data", "symbolstream", "--init-symbolstream", "60", "--out", str(out), "--steps", "1",
             "--group", "4", "--lr", "1e-3", "--rlsd", "--quiet", "--threads", "1", "--max-tokens", "12",
             "--eval-windows", "4")
    assert r.returncode == 0, r.stderr
    assert "held-out: reward" in r.stdout
    recs = [json.loads(x) for x in (out / "metrics.jsonl").open()]
    assert [x["update"] for x in recs] == [1] and all("entropy" in x and "success" in x for x in recs)
    assert (out / "model" / "symbolstream").is_file() and (out / "checkpoint" / "state.pt").is_file()


def test_cli_bad_init_is_one_line_exit_2(tmp_path):
    r = _cli("--data", "symbolstream", "--init", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "SymbolStream" in r.stderr


def test_group_size_outside_4_to_16_is_refused():
    for g in (3, 17):
        with pytest.raises(ValueError, match="4–16"):
            RolloutConfig(group=g)
