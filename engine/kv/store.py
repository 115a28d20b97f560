"""The offload tier of a sparse layer: every token's K and V, token-major, so a top-k fetch is a row gather.

    bits=16  k, v          [B, H, cap, D]  store dtype (fp16 under an fp32 model); pinned host memory when
                                           the model runs on CUDA, so fetches can be non-blocking
    bits=8   k, v codes    [B, H, cap, D]  int8, symmetric: x ≈ code · scale, |error| <= scale / 2
             k, v scale    [B, H, cap, 1]  fp16, one per (token, head) = max|x| / 127

bits=8 is the *compact store* for CPU-only machines, where the offload tier is the same RAM as the fast
tier: it holds about half the bytes of fp16 (D + 2 bytes per row instead of 2·D). Rows are quantized one
by one when appended, so the codes of a row never depend on its neighbours (a rollback then re-append
gives the same codes). Columns grow in place (``grow.Growing``, the one growth policy); ``nbytes`` counts the
capacity, ``used_nbytes`` the rows held.
"""

from __future__ import annotations

import torch

from engine.kv.grow import Growing
from engine.kv.quant import take_rows


class RowStore:
    def __init__(self, bits: int, dtype: torch.dtype, device, pinned: bool = False):
        if bits not in (8, 16):
            raise ValueError(f"offload store bits must be 8 or 16, got {bits}")
        self.bits, self.dtype, self.device, self.pinned = bits, dtype, device, pinned
        # bits 16: [k, v]; bits 8: [k codes, v codes, k scale, v scale]; rows along -2
        self.cols = [Growing(-2, min_capacity=256, pinned=pinned) for _ in range(2 if bits == 16 else 4)]
        self.n = 0

    def _encode(self, k: torch.Tensor, v: torch.Tensor) -> list[torch.Tensor]:
        if self.bits == 16:
            return [k, v]
        out_codes, out_scales = [], []
        for x in (k, v):
            scale = (x.float().abs().amax(-1, keepdim=True) / 127).clamp_min(1e-8)
            out_codes.append((x.float() / scale).round_().clamp_(-127, 127).to(torch.int8))
            out_scales.append(scale.half())
        return out_codes + out_scales

    def _decode(self, cols: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.bits == 16:
            return cols[0], cols[1]
        return self._scaled(cols[0], cols[2]), self._scaled(cols[1], cols[3])

    def _scaled(self, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return (codes.float() * scale.float()).to(self.dtype)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v [B, H, q, D] → rows n .. n+q."""
        new = self._encode(k, v)
        for col, t in zip(self.cols, new, strict=True):  # blocking: a later host-side gather reads these rows
            col.append(t, dtype=self.dtype if self.bits == 16 else t.dtype, device=self.device)
        self.n += k.shape[-2]

    def fetch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows idx [B, H, k] → (k, v) [B, H, k, D] in the store dtype, on the store's device."""
        idx = idx.to(self.cols[0].buf.device)
        return self._decode([take_rows(c.buf, idx) for c in self.cols])

    def keys(self, idx: torch.Tensor) -> torch.Tensor:
        """Only the keys of rows idx (a rerank needs no values)."""
        idx = idx.to(self.cols[0].buf.device)
        keys = take_rows(self.cols[0].buf, idx)
        return keys if self.bits == 16 else self._scaled(keys, take_rows(self.cols[2].buf, idx))

    def range(self, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows lo .. hi as (k, v) [B, H, hi - lo, D]."""
        return self._decode([c.buf[:, :, lo:hi] for c in self.cols])

    def truncate(self, n: int) -> None:
        self.n = min(self.n, n)
        for c in self.cols:
            c.truncate(self.n)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.cols)

    @property
    def used_nbytes(self) -> int:
        return sum(c.used_nbytes for c in self.cols)
