"""The model passes λ(q) needs (torch, transformers causal LMs), batched over same-length prompts.

Zero-shot (DAMI-style "Conf"): the Instruct model greedily writes a short direct answer a (k ≤ 16
tokens); c_I = exp(mean log p_I(a_j)); the Thinking model is teacher-forced on the same a in one
forward pass; D = mean Jensen–Shannon divergence between the two next-token distributions along a.
Trained (DAMI-style "Pref"): h(q) = mean-pooled last hidden state of the Instruct model's prefill,
taken from the same pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Probe:
    answer: torch.Tensor  # [n, k] greedy direct-answer ids (eos-padded after the stop)
    steps: torch.Tensor  # [n] valid steps per row (through the first eos)
    logp: torch.Tensor  # [n, k] log p_I of the chosen tokens
    probs: torch.Tensor  # [n, k, V] p_I along the answer
    pooled: torch.Tensor  # [n, H] mean last hidden state over the prompt


@torch.no_grad()
def instruct_probe(model, ids: torch.Tensor, k: int, eos_id: int) -> Probe:
    """Greedy k-token direct answer from the Instruct weights, with its probabilities."""
    out = model(input_ids=ids, use_cache=True, output_hidden_states=True)
    pooled = out.hidden_states[-1].float().mean(1)
    past, logits = out.cache, out.logits[:, -1].float()
    n = ids.shape[0]
    done = torch.zeros(n, dtype=torch.bool)
    steps = torch.zeros(n, dtype=torch.long)
    toks, logps, probs = [], [], []
    for _ in range(k):
        p = logits.softmax(-1)
        t = p.argmax(-1)
        t = torch.where(done, torch.full_like(t, eos_id), t)
        toks.append(t)
        logps.append(p.gather(1, t[:, None]).squeeze(1).clamp_min(1e-30).log())
        probs.append(p)
        steps += (~done).long()
        done |= t == eos_id
        if bool(done.all()):
            break
        out = model(input_ids=t[:, None], cache=past, use_cache=True)
        past, logits = out.cache, out.logits[:, -1].float()
    return Probe(torch.stack(toks, 1), steps, torch.stack(logps, 1), torch.stack(probs, 1), pooled)


@torch.no_grad()
def teacher_probs(model, ids: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """[n, k, V] next-token distributions of ``model`` along a given answer (one forward pass)."""
    full = torch.cat([ids, answer[:, :-1]], 1)
    logits = model(input_ids=full).logits[:, ids.shape[1] - 1:].float()
    return logits.softmax(-1)


def _mask(steps: torch.Tensor, k: int) -> torch.Tensor:
    return (torch.arange(k)[None] < steps[:, None]).float()


def confidence(probe: Probe) -> torch.Tensor:
    """c_I per row: geometric-mean probability of the Instruct model's own answer."""
    m = _mask(probe.steps, probe.logp.shape[1])
    return ((probe.logp * m).sum(1) / m.sum(1).clamp_min(1)).exp()


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence (nats) over the last axis."""
    mid = 0.5 * (p + q)

    def kl(a, b):
        return (a * (a.clamp_min(1e-30).log() - b.clamp_min(1e-30).log())).sum(-1)

    return 0.5 * kl(p, mid) + 0.5 * kl(q, mid)


def discrepancy(probe: Probe, p_t: torch.Tensor) -> torch.Tensor:
    """D per row: mean JS(p_I ‖ p_T) along the valid answer steps."""
    m = _mask(probe.steps, probe.logp.shape[1])
    return (js_divergence(probe.probs, p_t) * m).sum(1) / m.sum(1).clamp_min(1)
