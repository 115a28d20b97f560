"""Rotary positions for incremental prefill on a live cache (M-RoPE, Qwen2-VL family).

A plain forward of a new chunk against the cache is wrong in transformers 5.24: the model computes
the chunk's multimodal positions as if its image started the sequence. The positions are, however,
a pure function of the layout *up to* each token: text tokens advance one position each, and an
image block starting at position ``p`` gets (t, h, w) = (p, p + row, p + col), after which text
resumes at ``p + max(H, W)``. So the positions of a chunk are the model's own ``get_rope_index`` of
the chunk, shifted by the next position the history ends at. That makes the incremental positions
identical to what one full forward over the whole sequence computes (the key test checks it).

``RopeTracker`` keeps, for every prefix length, the next position, so a rollback (crop) restores
it exactly.
"""

from __future__ import annotations

import torch


class RopeTracker:
    """Running position state for one context. ``next_at[i]`` = the next position after ``i`` tokens."""

    def __init__(self, model, image_token_id: int | None):
        inner = getattr(model, "model", None)
        fn = getattr(inner, "get_rope_index", None)
        self._rope_index = fn if callable(fn) else None
        self.image_token_id = image_token_id
        self.next_at: list[int] = [0]

    @property
    def mrope(self) -> bool:
        return self._rope_index is not None

    def reset(self) -> None:
        self.next_at = [0]

    def crop(self, n_tokens: int) -> None:
        """Forget the positions of the last ``n_tokens`` tokens."""
        if n_tokens > 0:
            del self.next_at[-n_tokens:]

    def positions(self, ids: torch.Tensor, image_grid_thw: torch.Tensor | None) -> torch.Tensor:
        """Positions for chunk ``ids`` [1, L] appended to the history; records them. Returns [3, 1, L]."""
        start = self.next_at[-1]
        length = ids.shape[1]
        mm = (ids == self.image_token_id).int() if self.image_token_id is not None else None
        if self._rope_index is not None and mm is not None and bool(mm.any()):
            pos, _ = self._rope_index(ids, mm_token_type_ids=mm, image_grid_thw=image_grid_thw)
            pos = pos + start  # [3, 1, L]: every coordinate is linear in the start position
        else:
            pos = torch.arange(start, start + length, device=ids.device).view(1, 1, -1).expand(3, 1, -1)
        # After token i the next position is max(position so far) + 1; for text that is just i + 1.
        running = torch.cummax(pos.amax(dim=0)[0], dim=0).values + 1  # [L]
        self.next_at.extend(int(v) for v in running.tolist())
        return pos
