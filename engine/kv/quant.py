"""Asymmetric min-max group quantization with real bit packing (KIVI-style).

One group of ``g`` consecutive values along the last axis shares a scale and a zero (both fp16, as in
KIVI); codes are packed ``8 // bits`` per byte along the same axis::

    x [..., N]  ──quantize──▶  codes uint8 [..., N*bits/8]   scale fp16 [..., N/g]   zero fp16 [..., N/g]

Keys are quantized *per channel* (groups run along tokens), so callers pass ``k.transpose(-1, -2)``;
values are quantized *per token* (groups run along head_dim). Error bound per element: ``scale / 2``
plus the fp16 rounding of scale and zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.kv.grow import Growing

SUPPORTED_BITS = (1, 2, 4, 8)


@dataclass
class QTensor:
    """Packed codes plus per-group scale/zero; ``n`` values along the last axis before packing."""

    codes: torch.Tensor  # uint8 [..., n * bits / 8]
    scale: torch.Tensor  # fp16 [..., n / group]
    zero: torch.Tensor  # fp16 [..., n / group]
    bits: int
    group: int

    @property
    def n(self) -> int:
        return self.codes.shape[-1] * 8 // self.bits

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.codes, self.scale, self.zero))

    def cat(self, other: QTensor) -> QTensor:
        """Append ``other`` along the last (quantized) axis; both hold whole groups."""
        return QTensor(torch.cat([self.codes, other.codes], -1), torch.cat([self.scale, other.scale], -1),
                       torch.cat([self.zero, other.zero], -1), self.bits, self.group)

    def head(self, n: int) -> QTensor:
        """The first ``n`` values (``n`` a multiple of the group size)."""
        return QTensor(self.codes[..., : n * self.bits // 8], self.scale[..., : n // self.group],
                       self.zero[..., : n // self.group], self.bits, self.group)

    def tail(self, start: int) -> QTensor:
        return QTensor(self.codes[..., start * self.bits // 8:], self.scale[..., start // self.group:],
                       self.zero[..., start // self.group:], self.bits, self.group)

    def rows(self, index: torch.Tensor) -> QTensor:
        """Rows ``index`` [B, H, k] of the third axis (e.g. the channels a query cares about) → [B, H, k, ...]."""
        return QTensor(take_rows(self.codes, index), take_rows(self.scale, index), take_rows(self.zero, index),
                       self.bits, self.group)


class GrowingQTensor:
    """A QTensor grown along its quantized axis into spare capacity (``grow.Growing``): keys per channel grow
    along -1 (codes, scale and zero all run along tokens), values per token along -2 (one row per token)."""

    def __init__(self, axis: int):
        if axis not in (-1, -2):
            raise ValueError("axis is -1 (per-channel keys) or -2 (per-token values)")
        self.axis, self.bits, self.group = axis, 0, 0
        self.parts = [Growing(axis) for _ in range(3)]  # codes, scale, zero

    def append(self, qt: QTensor) -> None:
        self.bits, self.group = qt.bits, qt.group
        for part, t in zip(self.parts, (qt.codes, qt.scale, qt.zero), strict=True):
            part.append(t)

    def view(self) -> QTensor | None:
        if not self.parts[0].n:
            return None
        return QTensor(*(p.view() for p in self.parts), self.bits, self.group)

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` values/tokens (whole groups along -1)."""
        per_code, per_scale = (self.bits / 8, 1 / self.group) if self.axis == -1 else (1, 1)
        for part, per in zip(self.parts, (per_code, per_scale, per_scale), strict=True):
            part.truncate(int(n * per))

    def rows(self, index: torch.Tensor) -> QTensor:
        """``view().rows(index)`` without copying the history: rows come from the contiguous buffers first."""
        return QTensor(*(take_rows(p.buf, index).narrow(-1, 0, p.n) for p in self.parts), self.bits, self.group)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    @property
    def used_nbytes(self) -> int:
        return sum(p.used_nbytes for p in self.parts)


def take_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[b, h, index[b, h, j]]`` for t [B, H, N, X] and index [B, H, k] → [B, H, k, X].

    One ``index_select`` over the flattened (B·H·N) rows: ~9x faster on CPU than ``torch.gather`` with an
    index expanded over X (a 512-row fetch from an 8k-token store: 0.04 vs 0.38 ms).
    """
    b, h, n, x = t.shape
    flat = index + torch.arange(b * h, device=t.device).view(b, h, 1) * n
    return t.reshape(b * h * n, x).index_select(0, flat.reshape(-1).to(t.device)).view(b, h, -1, x)


def pack(q: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes [..., N] (each < 2**bits) → packed uint8 [..., N*bits/8]."""
    per = 8 // bits
    q = q.reshape(*q.shape[:-1], q.shape[-1] // per, per)
    shifts = torch.arange(0, 8, bits, device=q.device, dtype=torch.uint8)  # [per]
    return (q << shifts).sum(-1, dtype=torch.uint8)


def unpack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    shifts = torch.arange(0, 8, bits, device=codes.device, dtype=torch.uint8)
    q = (codes.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # [..., P, per]
    return q.reshape(*codes.shape[:-1], -1)


def quantize(x: torch.Tensor, bits: int, group: int) -> QTensor:
    """Quantize along the last axis in groups of ``group``; its length must be a multiple of it."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    n = x.shape[-1]
    if n % group or group % (8 // bits):
        raise ValueError(f"length {n} must be a multiple of group {group} (and group of {8 // bits})")
    xg = x.float().reshape(*x.shape[:-1], n // group, group)  # [..., G, g]
    mn = xg.amin(-1, keepdim=True).half()
    mx = xg.amax(-1, keepdim=True)
    scale = ((mx - mn.float()) / (2**bits - 1)).clamp_min(1e-6).half()
    q = ((xg - mn.float()) / scale.float()).round_().clamp_(0, 2**bits - 1).to(torch.uint8)
    return QTensor(pack(q.reshape(x.shape), bits), scale.squeeze(-1), mn.squeeze(-1), bits, group)


_LUT: dict = {}


def _unpack_float(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """``unpack(codes, bits).float()`` through a 256-entry table (one lookup per byte instead of shift, mask and
    convert: ~1.6x faster dequantization on CPU)."""
    key = (bits, codes.device)
    lut = _LUT.get(key)
    if lut is None:
        lut = _LUT[key] = unpack(torch.arange(256, dtype=torch.uint8, device=codes.device)[:, None], bits).float()
    q = torch.nn.functional.embedding(codes.long(), lut)  # [..., P, 8 // bits]
    return q.reshape(*codes.shape[:-1], -1)


def dequantize(qt: QTensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    q = _unpack_float(qt.codes, qt.bits)
    q = q.reshape(*q.shape[:-1], -1, qt.group)  # [..., G, g]
    x = q * qt.scale.float().unsqueeze(-1) + qt.zero.float().unsqueeze(-1)
    return x.reshape(*x.shape[:-2], -1).to(dtype)


def bytes_per_token(heads: int, head_dim: int, bits: int, group: int) -> float:
    """Analytic bytes per token for one of K or V: codes + fp16 scale and zero per group."""
    return heads * head_dim * (bits / 8 + 4 / group)
