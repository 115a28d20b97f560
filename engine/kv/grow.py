"""Append-only storage along one axis with spare capacity, so an append costs O(new), not O(history).

A stream appends a frame's tokens every second for hours. ``torch.cat`` onto the history copies all of it
on every append (measured on 2 layers of Qwen2.5-VL-3B KV shape, 9 decode steps: 38 ms at 1 k tokens,
543 ms at 22 k; at 360 k tokens of a 7B-shaped sketch ~1.6 GB per tick). ``Growing`` keeps a buffer with
room to spare and copies only when it runs out::

    buffer  [ used: n ................................ | spare ........ ]   capacity = n + spare
    grows to next_capacity(needed, capacity) = max(needed, 1.25 x capacity, min_capacity)

This is the one growth policy of every cache here (full layers, sketches, the offload store): appends are
amortised O(1) and at most a fifth of a grown buffer is spare. ``nbytes`` counts the whole buffer (what
is allocated); ``used_nbytes`` only the ``n`` entries held.
"""

from __future__ import annotations

import torch

GROWTH = 4  # grow by capacity // GROWTH (x1.25)


def next_capacity(need: int, cap: int, min_capacity: int) -> int:
    """The new capacity for ``need`` entries when ``cap`` is too small."""
    return max(need, cap + cap // GROWTH, min_capacity)


class Growing:
    def __init__(self, axis: int = -1, min_capacity: int = 64, pinned: bool = False):
        self.axis, self.min_capacity, self.pinned = axis, min_capacity, pinned
        self.buf: torch.Tensor | None = None
        self.n = 0

    def append(self, t: torch.Tensor, dtype: torch.dtype | None = None, device=None) -> None:
        """Append ``t`` along the axis (stored as ``dtype`` on ``device`` when given: the first append decides)."""
        ax = self.axis % t.dim()
        need = self.n + t.shape[ax]
        cap = 0 if self.buf is None else self.buf.shape[ax]
        if need > cap:
            shape = list(t.shape)
            shape[ax] = next_capacity(need, cap, self.min_capacity)
            like = self.buf if self.buf is not None else t
            new = torch.empty(shape, dtype=dtype or like.dtype, device=device or like.device,
                              pin_memory=self.pinned)
            if self.n:
                new.narrow(ax, 0, self.n).copy_(self.view())
            self.buf = new
        self.buf.narrow(ax, self.n, t.shape[ax]).copy_(t)
        self.n = need

    def view(self) -> torch.Tensor | None:
        """The used part (a view, no copy)."""
        return None if self.buf is None else self.buf.narrow(self.axis % self.buf.dim(), 0, self.n)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` entries (a rollback); the capacity stays for the next appends."""
        self.n = min(self.n, n)

    @property
    def nbytes(self) -> int:
        return 0 if self.buf is None else self.buf.numel() * self.buf.element_size()

    @property
    def used_nbytes(self) -> int:
        if self.buf is None or not self.buf.shape[self.axis % self.buf.dim()]:
            return 0
        return self.nbytes * self.n // self.buf.shape[self.axis % self.buf.dim()]
