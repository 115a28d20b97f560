"""Token sampling for the llamacpp backend: JoyAI's defaults (temperature 0.8, top-p 0.9, top-k 40,
no repetition penalty), done in numpy on the last logits so the backend controls every step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SamplingOptions:
    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    greedy: bool = False


def sample(logits: np.ndarray, opts: SamplingOptions, rng: np.random.Generator) -> int:
    """One token id from ``logits`` [n_vocab] (float32)."""
    if opts.greedy or opts.temperature <= 0:
        return int(np.argmax(logits))
    k = min(opts.top_k, logits.shape[0]) if opts.top_k > 0 else logits.shape[0]
    idx = np.argpartition(-logits, k - 1)[:k]  # [k] the k best, unordered
    idx = idx[np.argsort(-logits[idx], kind="stable")]  # [k] best first
    z = logits[idx].astype(np.float64) / opts.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if 0 < opts.top_p < 1:
        keep = int(np.searchsorted(np.cumsum(p), opts.top_p) + 1)  # smallest prefix with mass ≥ top_p
        p = p[:keep] / p[:keep].sum()
        idx = idx[:keep]
    return int(idx[rng.choice(len(idx), p=p)])
