"""The weighted SFT loss: L = −Σ_j w_j log p(y_j | y_<j) / Σ_j w_j over the assistant tokens.

Same contract as the reference's ``weighted_sft_loss.py``: weights [B, T] aligned with the labels
(−100 = not trained), the causal shift applied here, normalised by the sum of the valid weights —
so a batch of mostly silent seconds is not drowned by its own length.
"""

from __future__ import annotations

import torch

IGNORE = -100


def weighted_sft_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V], labels [B, T] (token at t is predicted from position t−1), weights [B, T]."""
    logits = logits[:, :-1, :].float()  # [B, T-1, V]: position t predicts token t+1
    labels = labels[:, 1:]  # [B, T-1]
    weights = weights[:, 1:].to(logits.dtype)  # [B, T-1]
    valid = labels != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0  # keeps the graph: a batch with nothing to learn is a zero step
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.clamp_min(0).reshape(-1), reduction="none"
    ).view_as(labels)  # [B, T-1]
    w = weights * valid
    total = w.sum()
    if float(total) <= 0:
        return logits.sum() * 0.0
    return (nll * w).sum() / total
