"""Rollouts tick by tick on the torch backend's own live context, and the log-probs the loss reads.

A ``Window`` is an episode as the live context evaluates it: the forwards before its first tick (the
chunk start and earlier ticks with their gold decisions, recorded by training/episodes.py's layout or
built by an environment from the same ``CHATML`` layout), then one observation per tick. A rollout
plays it on a real ``TorchContext`` of the policy (``RolloutContext`` only records what it evaluates):
each tick the observation is evaluated, ``DecisionDecoder.decide`` samples a decision, the
``TorchBackend.commit`` path normalises and commits it, and the next tick sees that committed decision
— a wrong early decision changes what later ticks see.

Scoring reads log π(y_t) of exactly the sampled tokens from exactly the sampled distribution: logits /
temperature, the decoder's banned tokens at −∞, and the same top-k / top-p truncation when switched
on. A decision whose sampled tokens begin its committed tokens (the usual case) is scored inside one
forward over the whole committed sequence; one that was rewritten by normalisation gets its own forward
over its context plus the sampled tokens (``pieces``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.backends.base import BackendConfig
from engine.backends.decoding import DecisionDecoder, Sampling
from engine.backends.torch_context import TorchContext
from engine.backends.torch_vlm import TorchBackend
from engine.eval.scenarios import Expected
from engine.protocol import normalize
from training.rl.config import RolloutConfig
from training.rl.reward import Outcome
from training.trainer import _base  # the model inside a peft wrapper, if any


@dataclass
class Obs:
    """One forward of the live context: token ids and, with a frame, its pixels."""

    ids: list[int]
    pixel_values: torch.Tensor | None = None
    grid: torch.Tensor | None = None


@dataclass
class Window:
    """An episode: ``prefix`` forwards, then ``tail`` (the gold decision before the window, queued as
    the live context queues it), then one observation per tick. ``expected`` and decisions use episode
    ticks 0..len(ticks)−1; ``t0`` is the stream second of tick 0. ``hint``: the annotation as text
    (RLSD's teacher context)."""

    name: str
    prefix: list[Obs]
    tail: list[int]
    ticks: list[Obs]
    expected: list[Expected]
    t0: int = 0
    hint: str = ""

    @property
    def duration(self) -> int:
        return len(self.ticks)


@dataclass
class Decided:
    tick: int
    start: int  # where the decision begins in the committed sequence
    sampled: list[int]  # the sampled tokens, the stop token included
    raw: str  # the decided text


@dataclass
class Rollout:
    window: Window
    ids: list[int]
    positions: torch.Tensor  # [3, L]
    frames: list[tuple[int, torch.Tensor, torch.Tensor]]  # (first token, pixel_values, grid)
    decided: list[Decided]
    outcome: Outcome | None = None
    guide: bool = False  # NPO: injected from a later checkpoint

    def decisions(self) -> dict[int, str]:
        return {d.tick: d.raw for d in self.decided}


class RolloutContext(TorchContext):
    """The torch live context, recording every evaluated token's position, every frame, and every
    token the decoder samples (``is_stop`` sees each one). Rollback forgets what it drops."""

    def start_recording(self) -> None:
        self.pos = torch.zeros(3, 0, dtype=torch.long)
        self.frames: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.sampled: list[int] = []

    def _forward(self, ids: list[int], pixel_values=None, grid=None, *rest) -> None:
        at, got, positions = len(self.ids), [], self.rope.positions
        self.rope.positions = lambda t_ids, g: got.append(positions(t_ids, g)) or got[-1]
        try:
            super()._forward(ids, pixel_values, grid, *rest)
        finally:
            del self.rope.positions
        self.pos = torch.cat([self.pos, got[0][:, 0, :].cpu()], dim=1)
        if pixel_values is not None:
            self.frames.append((at, pixel_values, grid))

    def observe_ids(self, obs: Obs) -> None:
        """``append`` for an already tokenized observation: queued tokens first, one forward."""
        self._forward(self.pending + obs.ids, obs.pixel_values, obs.grid)
        self.pending = []

    def rollback(self, n: int) -> None:
        super().rollback(n)
        self.pos = self.pos[:, :n]
        self.frames = [f for f in self.frames if f[0] < n]

    def is_stop(self, token: int) -> bool:
        self.sampled.append(int(token))
        return super().is_stop(token)


class Roller:
    """Rolls windows out with one model: a ``TorchBackend`` attached to it, its context a
    ``RolloutContext``; decisions sampled by the backend's ``DecisionDecoder`` path."""

    def __init__(self, model, processor, cfg: RolloutConfig, device: str = "cpu"):
        self.cfg = cfg
        bc = BackendConfig(model="rl", temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                           max_tokens=cfg.max_tokens)
        bc.kv.fast_attention = False  # stock SDPA: what the scoring forward runs
        self.backend = TorchBackend()
        self.backend.attach(_base(model), processor, bc, device)  # peft's LoRA layers live inside the base model
        self.ctx = self.backend.ctx
        self.ctx.__class__ = RolloutContext  # the backend's own context, built by its own code
        self.model = model

    def sampling(self, seed: int, greedy: bool = False) -> Sampling:
        return Sampling(self.cfg.temperature, self.cfg.top_p, self.cfg.top_k, greedy, seed)

    @torch.no_grad()
    def roll(self, w: Window, seed: int, greedy: bool = False, forced: list[str] | None = None) -> Rollout:
        """One rollout of ``w``; ``forced`` commits those decisions instead of sampling (gold layouts)."""
        ctx, be = self.ctx, self.backend
        was_training = self.model.training
        self.model.eval()
        be.decoder = DecisionDecoder.for_context(ctx, self.sampling(seed, greedy), 0.0)
        ctx.reset()
        ctx.start_recording()
        for seg in w.prefix:
            ctx._forward(seg.ids, seg.pixel_values, seg.grid)
        ctx.queue(w.tail)
        decided = []
        for i, obs in enumerate(w.ticks):
            ctx.observe_ids(obs)
            start = len(ctx)
            ctx.sampled = []
            raw = forced[i] if forced is not None else "".join(be.decide(self.cfg.max_tokens))
            be.commit(normalize(raw).canonical())
            decided.append(Decided(i, start, list(ctx.sampled) if forced is None else [], raw))
        if ctx.pending:
            ctx._forward(ctx.pending)  # the last decision's tail: its tokens are in the sequence
            ctx.pending = []
        if was_training:
            self.model.train()
        return Rollout(w, list(ctx.ids), ctx.pos.clone(), list(ctx.frames), decided)


# --- scoring ---------------------------------------------------------------------------------------


@dataclass
class Piece:
    """One forward and the tokens read from it: logits at ``at`` predict ``tokens``."""

    ids: torch.Tensor  # [L]
    positions: torch.Tensor  # [3, L]
    frames: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    def with_prefix(self, ids: list[int]) -> Piece:
        """The same piece behind ``ids`` (text): every position shifts by their length."""
        n = len(ids)
        head = torch.arange(n).view(1, -1).expand(3, -1)
        return Piece(torch.cat([torch.tensor(ids, dtype=torch.long), self.ids]),
                     torch.cat([head, self.positions + n], dim=1),
                     [(a + n, pv, g) for a, pv, g in self.frames], [a + n for a in self.at], list(self.tokens))


def pieces(r: Rollout) -> list[Piece]:
    """The forwards that score every sampled decision token of ``r``, in decision order."""
    ids = torch.tensor(r.ids, dtype=torch.long)
    main = Piece(ids, r.positions, r.frames)
    out = [main]
    for d in r.decided:
        y = d.sampled
        if not y:
            continue
        if r.ids[d.start:d.start + len(y)] == y:
            main.at.extend(range(d.start - 1, d.start - 1 + len(y)))
            main.tokens.extend(y)
            continue
        ctx_pos = r.positions[:, :d.start]
        nxt = int(ctx_pos.max()) + 1 if d.start else 0  # text after the context: one position per token
        tail = torch.arange(nxt, nxt + len(y)).view(1, -1).expand(3, -1)
        out.append(Piece(torch.cat([ids[:d.start], torch.tensor(y, dtype=torch.long)]),
                         torch.cat([ctx_pos, tail], dim=1), [f for f in r.frames if f[0] < d.start],
                         list(range(d.start - 1, d.start - 1 + len(y))), list(y)))
    return [p for p in out if p.tokens]


def piece_logits(model, p: Piece, device: str = "cpu") -> torch.Tensor:
    """Logits [M, V] (float32) at the piece's read positions, from one forward without a cache."""
    base = _base(model)
    ids = p.ids.view(1, -1).to(device)
    # only the read positions' logits: a real vocabulary (151,936) times the sequence would not fit
    kw = dict(input_ids=ids, use_cache=False, logits_to_keep=torch.tensor(p.at, device=device))
    if callable(getattr(getattr(base, "model", None), "get_rope_index", None)):  # M-RoPE: the live positions
        kw["position_ids"] = p.positions.unsqueeze(1).to(device)  # [3, 1, L]
    if p.frames:
        image_id = base.config.image_token_id
        kw.update(pixel_values=torch.cat([f[1] for f in p.frames]).to(device, base.dtype),
                  image_grid_thw=torch.cat([f[2] for f in p.frames]).to(device),
                  mm_token_type_ids=(ids == image_id).int())
    return model(**kw).logits[0].float()  # [M, V]


def batch_logits(model, ps: list[Piece], device: str = "cpu") -> list[torch.Tensor]:
    """``piece_logits`` of text-only pieces in one forward: right-padded, so under the causal mask every
    real token sees exactly its own sequence at its own positions (0, 1, …)."""
    n = max(len(p.ids) for p in ps)
    ids = torch.zeros(len(ps), n, dtype=torch.long)
    for k, p in enumerate(ps):
        ids[k, :len(p.ids)] = p.ids
    out = model(input_ids=ids.to(device), use_cache=False).logits
    return [out[k, p.at].float() for k, p in enumerate(ps)]


def log_dist(logits: torch.Tensor, cfg: RolloutConfig, banned: list[int]) -> torch.Tensor:
    """log π(·) [M, V]: the distribution ``decoding.sample`` draws from (logits / temperature, banned
    tokens at −∞, the same top-k / top-p truncation when switched on)."""
    z = logits / cfg.temperature
    if banned:
        z = z.index_fill(-1, torch.tensor(banned, device=z.device), float("-inf"))
    if cfg.top_k > 0 or 0 < cfg.top_p < 1:
        z = truncate(z, cfg.top_k, cfg.top_p)
    return torch.log_softmax(z, dim=-1)


def entropy(logp_all: torch.Tensor) -> torch.Tensor:
    """Entropy [M] of each row of log-probs [M, V] (−∞ entries contribute 0)."""
    p = logp_all.exp()
    return -(p * torch.where(p > 0, logp_all, torch.zeros_like(logp_all))).sum(-1)


def truncate(z: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """``decoding.sample``'s truncation on [M, V]: keep the k best, then the smallest prefix of them
    (best first) whose mass reaches top_p; the rest −∞."""
    order = torch.argsort(z, dim=-1, descending=True, stable=True)
    zs = z.gather(-1, order)
    rank = torch.arange(z.shape[-1], device=z.device).expand_as(zs)
    keep = torch.ones_like(zs, dtype=torch.bool)
    if top_k > 0:
        keep &= rank < top_k
    if 0 < top_p < 1:
        p = torch.softmax(zs.masked_fill(~keep, float("-inf")).double(), dim=-1)
        below = (torch.cumsum(p, dim=-1) < top_p).sum(-1, keepdim=True)  # searchsorted(cumsum, top_p)
        keep &= rank <= below
    out = torch.full_like(z, float("-inf"))
    return out.scatter(-1, order, zs.masked_fill(~keep, float("-inf")))


def token_dists(model, rollouts: list[Rollout], cfg: RolloutConfig, banned: list[int], device: str = "cpu",
                hint_of=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log π(·) [M, V], sampled tokens [M], rollout index [M]) for every sampled decision token of
    ``rollouts``. ``hint_of(window) -> ids`` puts text before each sequence (the RLSD teacher's context)."""
    dists, toks, owner = [], [], []
    todo = [(i, p.with_prefix(hint_of(r.window)) if hint_of is not None else p)
            for i, r in enumerate(rollouts) for p in pieces(r)]
    text_only = not callable(getattr(getattr(_base(model), "model", None), "get_rope_index", None))
    if text_only and not any(p.frames for _, p in todo):  # one right-padded batch: causal, so exact
        logits = batch_logits(model, [p for _, p in todo], device)
    else:
        logits = [piece_logits(model, p, device) for _, p in todo]
    for (i, p), lg in zip(todo, logits, strict=True):
        dists.append(log_dist(lg, cfg, banned))
        toks.append(torch.tensor(p.tokens, dtype=torch.long, device=device))
        owner.append(torch.full((len(p.tokens),), i, dtype=torch.long))
    if not dists:
        return (torch.zeros(0, 1, device=device), torch.zeros(0, dtype=torch.long, device=device),
                torch.zeros(0, dtype=torch.long))
    return torch.cat(dists), torch.cat(toks), torch.cat(owner)


def score_tokens(model, rollouts: list[Rollout], cfg: RolloutConfig, banned: list[int], device: str = "cpu",
                 hint_of=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log π(y_t) [M], entropy [M], rollout index [M]) of every sampled decision token of ``rollouts``."""
    dist, toks, owner = token_dists(model, rollouts, cfg, banned, device, hint_of)
    return dist.gather(-1, toks.view(-1, 1)).squeeze(-1), entropy(dist), owner
