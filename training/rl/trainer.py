"""The GRPO loop, with NPO / AutoNPO guides and RLSD reweighting as switches.

    per update u:  windows(u) ──G rollouts each (rollout.py)──▶ rewards (reward.py)
                   [NPO: gated groups get one verified guide (npo.py)] ──▶ A = group_advantages
                   log π(y) of the sampled decision tokens, current policy (old = its detached copy)
                   [RLSD: Â_t from the frozen teacher with the hint (rlsd.py)] ──▶ grpo_loss ──▶ AdamW
    out/metrics.jsonl   one line per update; out/checkpoint/  everything needed to resume bit-exactly
    out/model/          the final checkpoint (the SFT format: ``presence run --backend torch`` loads it)

``cfg.steps`` counts every optimizer update of the run, the NPO scout's and AutoNPO's re-training
included, so methods compared at one ``steps`` use the same compute. Sampling seeds are a pure function
of (seed, update, window, rollout), so a resumed run repeats the same rollouts.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from training.rl.config import RLConfig
from training.rl.evaluate import evaluate
from training.rl.grpo import group_advantages, grpo_loss
from training.rl.npo import (
    PlateauMonitor,
    Snapshot,
    best_delta,
    inject,
    q_hat,
    rng_state,
    rollback_candidates,
    set_rng_state,
    v_hat,
)
from training.rl.reward import score
from training.rl.rlsd import Teacher, lam_at, reweight
from training.rl.rollout import Roller, Rollout, Window, entropy, score_tokens, token_dists


class RLError(RuntimeError):
    """A run cannot start or go on: one readable line."""


class GRPOTrainer:
    def __init__(self, cfg: RLConfig, model, processor, train: list[Window], held: list[Window],
                 device: str = "cpu", objective: str = "grpo"):
        if not train:
            raise RLError("no training windows")
        self.cfg, self.model, self.processor, self.device = cfg, model, processor, device
        self.train_w, self.held_w = train, held
        self.objective = objective  # "grpo", or "opsd": the plain on-policy self-distillation baseline
        self.roller = Roller(model, processor, cfg.rollout, device)
        self.banned = list(self.roller.ctx.banned)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.teacher = Teacher(model, cfg.rlsd) if (cfg.rlsd.enabled or objective == "opsd") else None
        self.guide_model = None
        self.guides: dict[str, Rollout | None] = {}
        self.guide_until = -1  # guides are injected while the policy step is below this
        self.pool: dict[str, Window] = {}  # AutoNPO's mistake pool (recent gated windows)
        self.monitor = PlateauMonitor(cfg.autonpo)
        self.snapshots: dict[int, Snapshot] = {}
        self.u = 0  # optimizer updates so far (the budget)
        self.step = 0  # the policy's step (rolled back by AutoNPO)
        self.phase = "scout" if cfg.npo.enabled else "main"
        self.theta0: Snapshot | None = None
        self._hint_cache: dict[str, list[int]] = {}

    # --- rollouts ----------------------------------------------------------------------------------
    def seed_of(self, u: int, wi: int, g: int) -> int:
        # the scout, guide and probe rollouts use u < 0: keep every seed non-negative (numpy refuses others)
        return (((self.cfg.seed * 1_000_003 + u) * 1_009 + wi) * 101 + g) % (1 << 63)

    def windows_at(self, u: int) -> list[Window]:
        rng = random.Random(self.cfg.seed * 7_919 + u)
        return [self.train_w[rng.randrange(len(self.train_w))] for _ in range(self.cfg.windows_per_step)]

    def scored(self, r: Rollout) -> Rollout:
        r.outcome = score(r.window.expected, r.decisions(), r.window.duration, self.cfg.reward)
        return r

    def first_success(self, roller: Roller, w: Window, seeds) -> Rollout | None:
        """The first rollout of ``w`` (one per seed, in order) that verifies correct; None if none does."""
        for seed in seeds:
            r = self.scored(roller.roll(w, seed))
            if r.outcome.success:
                return r
        return None

    def guide_for(self, w: Window) -> Rollout | None:
        """A verified-correct trajectory of ``w`` from the guide checkpoint (cached; None if none found)."""
        if w.name not in self.guides and self.guide_model is not None:
            roller = Roller(self.guide_model, self.processor, self.cfg.rollout, self.device)
            wi = zlib.crc32(w.name.encode()) % 10_007  # stable
            self.guides[w.name] = self.first_success(roller, w, (self.seed_of(-1, wi, k)
                                                                 for k in range(self.cfg.npo.guide_tries)))
        g = self.guides.get(w.name)
        if g is None:
            return None
        g = copy.copy(g)
        g.guide = True
        return g

    def collect(self, u: int) -> tuple[list[Rollout], int]:
        G, gate = self.cfg.rollout.group, self.cfg.npo.gate
        out, injected = [], 0
        for wi, w in enumerate(self.windows_at(u)):
            grp = [self.scored(self.roller.roll(w, self.seed_of(u, wi, g))) for g in range(G)]
            ok = [r.outcome.success for r in grp]
            gated = sum(ok) / G <= gate
            if gated:
                self.pool[w.name] = w
                self.pool = dict(list(self.pool.items())[-32:])
            if self.step < self.guide_until and gate >= 0 and gated:
                grp, idx = inject(grp, ok, self.guide_for(w), gate)
                injected += idx is not None
            out.extend(grp)
        return out, injected

    # --- one update ----------------------------------------------------------------------------------
    def hint_ids(self, w: Window) -> list[int]:
        if w.name not in self._hint_cache:
            text = f"<|im_start|>system\n{w.hint}<|im_end|>\n" if w.hint else ""
            self._hint_cache[w.name] = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._hint_cache[w.name]

    def update(self, rollouts: list[Rollout]) -> dict:
        cfg, rc = self.cfg, self.cfg.rollout
        rewards = torch.tensor([r.outcome.reward for r in rollouts], dtype=torch.float32)
        if cfg.shuffle_rewards:  # negative control: the same rewards, attached to the wrong rollouts
            g = torch.Generator().manual_seed(cfg.seed * 31 + self.u)
            rewards = rewards[torch.randperm(len(rewards), generator=g)]
        adv = group_advantages(rewards, rc.group, cfg.grpo)
        self.model.train()
        stats: dict = {}
        old = teacher_lp = None
        for _ in range(max(1, cfg.grpo.updates)):
            if self.objective == "opsd":
                loss, ent = self._opsd_loss(rollouts)
            else:
                logp, ent, owner = score_tokens(self.model, rollouts, rc, self.banned, self.device)
                old = logp.detach() if old is None else old  # recomputed by this forward: the first ratio is 1
                a_tok = adv.to(logp.device)[owner]
                if cfg.rlsd.enabled:
                    if teacher_lp is None:
                        with torch.no_grad():
                            teacher_lp = score_tokens(self.teacher.model, rollouts, rc, self.banned, self.device,
                                                      hint_of=self.hint_ids)[0]
                    lam = lam_at(self.step, cfg.rlsd)
                    a_tok, st = reweight(a_tok, teacher_lp, logp, lam, cfg.rlsd.eps_w)
                    stats.update(st, lam=lam)
                loss, st = grpo_loss(logp, old, a_tok, cfg.grpo)
                stats.update(st)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise RLError(f"loss is {value} at update {self.u + 1} (lower --lr)")
        stats.update(loss=round(value, 6), entropy=round(float(ent.detach().mean()) if ent.numel() else 0.0, 5))
        return stats

    def _opsd_loss(self, rollouts):
        """On-policy self-distillation: KL(teacher with hint ‖ student) over the sampled decision positions."""
        rc = self.cfg.rollout
        s, _, _ = token_dists(self.model, rollouts, rc, self.banned, self.device)
        with torch.no_grad():
            t, _, _ = token_dists(self.teacher.model, rollouts, rc, self.banned, self.device, hint_of=self.hint_ids)
        pt = t.exp()
        kl = (pt * (torch.where(pt > 0, t, torch.zeros_like(t)) - torch.where(pt > 0, s, torch.zeros_like(s)))).sum(-1)
        return kl.mean(), entropy(s.detach())

    # --- the run -----------------------------------------------------------------------------------------
    def run(self, out: str | Path, resume: bool = False, bar: bool = True, stop_after: int | None = None,
            progress: Callable[[str], None] | None = None) -> dict:
        cfg = self.cfg
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load(out)
        else:
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
            if cfg.npo.enabled:
                self.theta0 = Snapshot.take(0, self.model, self.opt)
        log = (out / "metrics.jsonl").open("a" if resume else "w")
        pbar = _bar(cfg.steps, self.u) if bar else None
        t0, done_at_start = time.perf_counter(), self.u
        try:
            while self.u < cfg.steps:
                if stop_after is not None and self.u - done_at_start >= stop_after:
                    raise KeyboardInterrupt
                if self.phase == "scout" and self.step >= cfg.npo.scout_steps:
                    self._end_scout(progress)
                if self.teacher is not None and self.objective != "opsd":
                    self.teacher.maybe_refresh(self.step, self.model)
                rollouts, injected = self.collect(self.u)
                stats = self.update(rollouts)
                self.u += 1
                self.step += 1
                rew = [r.outcome.reward for r in rollouts if not r.guide]
                ok = [r.outcome.success for r in rollouts if not r.guide]
                rec = {"update": self.u, "step": self.step, "phase": self.phase,
                       "reward": round(sum(rew) / len(rew), 5), "success": round(sum(ok) / len(ok), 4),
                       "guides": injected, **stats, "wall_s": round(time.perf_counter() - t0, 3)}
                if cfg.autonpo.enabled:
                    rec.update(self._autonpo(rec["reward"], stats["entropy"], progress))
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if pbar is not None:
                    pbar.set_postfix(reward=f"{rec['reward']:.3f}", entropy=f"{stats['entropy']:.3f}",
                                     success=f"{rec['success']:.2f}")
                    pbar.update(1)
                if cfg.save_every and self.u % cfg.save_every == 0:
                    self.save(out)
        except KeyboardInterrupt:
            self.save(out)
            raise
        finally:
            log.close()
            if pbar is not None:
                pbar.close()
        self.save(out)
        self.model.eval()
        self.model.save_pretrained(out / "model")
        self.processor.save_pretrained(out / "model")
        return evaluate(self.roller, self.held_w, cfg.reward, marker=cfg.rlsd.hint_marker) if self.held_w else {}

    def _end_scout(self, progress) -> None:
        """NPO's early bootstrapping: the scout's weights become the guide; restart from θ0 with guides
        for as many policy steps as the scout ran."""
        self.guide_model = copy.deepcopy(self.model).eval()
        self.guides = {}
        n = self.step
        self.theta0.restore(self.model, self.opt)
        self.step, self.phase, self.guide_until, self.theta0 = 0, "main", n, None
        if progress:
            progress(f"npo: scout done after {n} steps; restarting from the SFT weights with its guides")

    def _autonpo(self, reward: float, ent: float, progress) -> dict:
        a = self.cfg.autonpo
        if self.step % a.snapshot_every == 0:
            self.snapshots[self.step] = Snapshot.take(self.step, self.model, self.opt)
            keep = max(a.deltas) + a.snapshot_every  # the newest snapshot at least max(Δ) back stays
            self.snapshots = {s: v for s, v in self.snapshots.items() if s >= self.step - keep}
        self.monitor.update(reward, ent)
        if self.step < self.guide_until or not self.monitor.fires():
            return {}
        pool = list(self.pool.values())
        if not pool:
            return {"autonpo": "fired, empty mistake pool"}
        now = copy.deepcopy(self.model).eval()
        gr = Roller(now, self.processor, self.cfg.rollout, self.device)
        trajs = [self.first_success(gr, w, (self.seed_of(-2, self.u, k) for k in range(a.q_tries))) for w in pool]
        cands = {}
        past = copy.deepcopy(self.model)
        for d in rollback_candidates(self.step, self.snapshots, a.deltas):
            past.load_state_dict(self.snapshots[self.step - d].weights)
            past.eval()
            pr = Roller(past, self.processor, self.cfg.rollout, self.device)
            fails = [not any(self.scored(pr.roll(w, self.seed_of(-3, self.u, k))).outcome.success
                             for k in range(a.q_tries)) for w in pool]
            ratios = []
            with torch.no_grad():
                for t in trajs:
                    if t is not None:
                        lp_past = score_tokens(past, [t], self.cfg.rollout, self.banned, self.device)[0]
                        lp_now = score_tokens(now, [t], self.cfg.rollout, self.banned, self.device)[0]
                        ratios.append(lp_past - lp_now)
            cands[d] = (q_hat(fails, [t is not None for t in trajs]), v_hat(ratios, a.v_floor))
        d = best_delta(cands)
        info = {"autonpo": {str(k): [round(q, 4), round(v, 4)] for k, (q, v) in cands.items()}, "delta": d}
        if d is None:
            return info
        fire_step = self.step
        self.guide_model = now
        self.guides = {w.name: t for w, t in zip(pool, trajs, strict=True)}
        self.snapshots[fire_step - d].restore(self.model, self.opt)
        self.step, self.guide_until = fire_step - d, fire_step
        self.snapshots = {s: v for s, v in self.snapshots.items() if s <= self.step}
        if progress:
            progress(f"autonpo: plateau at step {fire_step}; rolled back Δ={d} with {sum(t is not None for t in trajs)} guides")
        return info

    # --- checkpoints ---------------------------------------------------------------------------------------
    def save(self, out: Path) -> None:
        tmp = out / "checkpoint.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        state = {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                 "optimizer": self.opt.state_dict(), "rng": rng_state(), "u": self.u, "step": self.step,
                 "phase": self.phase, "guide_until": self.guide_until, "guides": self.guides, "pool": self.pool,
                 "monitor": self.monitor.state(), "snapshots": self.snapshots, "theta0": self.theta0,
                 "guide_model": None if self.guide_model is None else self.guide_model.state_dict(),
                 "teacher": None if self.teacher is None else self.teacher.model.state_dict()}
        torch.save(state, tmp / "state.pt")
        cfg = asdict(self.cfg)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1, default=list))
        ck = out / "checkpoint"
        if ck.exists():
            import shutil

            shutil.rmtree(ck)
        tmp.rename(ck)

    def load(self, out: Path) -> None:
        ck = out / "checkpoint" / "state.pt"
        if not ck.is_file():
            raise RLError(f"nothing to resume: {ck} not found")
        s = torch.load(ck, weights_only=False)
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.u, self.step, self.phase, self.guide_until = s["u"], s["step"], s["phase"], s["guide_until"]
        self.guides, self.pool, self.snapshots, self.theta0 = s["guides"], s["pool"], s["snapshots"], s["theta0"]
        self.monitor.load(s["monitor"])
        if s["guide_model"] is not None:
            self.guide_model = copy.deepcopy(self.model).eval()
            self.guide_model.load_state_dict(s["guide_model"])
        if s["teacher"] is not None and self.teacher is not None:
            self.teacher.model.load_state_dict(s["teacher"])
        set_rng_state(s["rng"])


def _bar(total: int, start: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="update", dynamic_ncols=True, desc="grpo")
