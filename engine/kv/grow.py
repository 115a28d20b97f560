"""Append-only storage along one axis with spare capacity, so a flush costs O(new), not O(history).

A stream appends a frame's tokens every second for hours. ``torch.cat`` onto the history copies all of it
on every append (at 360k tokens of a 7B-shaped sketch: ~1.6 GB per tick). ``Growing`` keeps a buffer with
room to spare and copies only when it runs out::

    buffer  [ used: n ................................ | spare ........ ]   capacity = n + spare
    grows to max(needed, capacity + capacity/8, capacity + min_grow): slack <= 12.5% (+ min_grow)

``nbytes`` counts the whole buffer (capacity, not just ``n``): what is really allocated.
"""

from __future__ import annotations

import torch


class Growing:
    def __init__(self, axis: int = -1, min_grow: int = 64):
        self.axis, self.min_grow = axis, min_grow
        self.buf: torch.Tensor | None = None
        self.n = 0

    def append(self, t: torch.Tensor) -> None:
        ax = self.axis % t.dim()
        need = self.n + t.shape[ax]
        cap = 0 if self.buf is None else self.buf.shape[ax]
        if need > cap:
            shape = list(t.shape)
            shape[ax] = max(need, cap + cap // 8, cap + self.min_grow)
            new = t.new_empty(shape)
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
