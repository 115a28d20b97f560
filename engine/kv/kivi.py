"""KIVI-style quantized layer: the whole history stays on the fast tier, compressed.

Memory layout of one layer (B batch, H kv heads, D head_dim, G = group = 64, R = residual = 128)::

    tokens  0 ............................ n_q | n_q ............ n
            ├── quantized, whole G-groups ──────┤├─ fp residual ─┤  (R <= len < R + G once warm)
    keys:   codes [B, H, D, n_q*b/8]  (per channel: a group = 64 tokens of one channel)
            scale/zero fp16 [B, H, D, n_q/G]
    values: codes [B, H, n_q, D*b/8]  (per token: a group = 64 channels of one token)
            scale/zero fp16 [B, H, n_q, D/Gv]

Flushing: once the residual reaches R + G tokens, its oldest whole groups are quantized so that R
tokens stay in full precision. Rollback (``crop``) of up to R tokens is therefore exact; a deeper
crop re-expands the last quantized groups (those tokens keep their dequantized values).
``bits=16`` keeps everything in full precision (the exactness baseline).
"""

from __future__ import annotations

import torch

from engine.kv.base import PresenceLayer, nbytes
from engine.kv.quant import QTensor, dequantize, quantize


class KiviLayer(PresenceLayer):
    def __init__(self, bits: int = 2, group: int = 64, residual: int = 128):
        super().__init__()
        if residual % group:
            raise ValueError("residual must be a multiple of the group size")
        self.bits, self.group, self.residual = bits, group, residual
        self.qk: QTensor | None = None  # over keys^T: [B, H, D, n_q]
        self.qv: QTensor | None = None  # over values: [B, H, n_q, D]
        self.n_q = 0
        self.res_k = self.res_v = None  # [B, H, r, D]

    def _vgroup(self) -> int:
        return min(self.group, self.head_dim)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.res_k, self.res_v = key_states[:, :, :0], value_states[:, :, :0]
        self.res_k = torch.cat([self.res_k, key_states], -2)
        self.res_v = torch.cat([self.res_v, value_states], -2)
        self.n += key_states.shape[-2]
        keys, values = self._dense()
        self._flush()
        return keys, values

    def _dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized history + residual: a transient full-precision copy for this layer's attention."""
        if self.qk is None:
            return self.res_k, self.res_v
        k = dequantize(self.qk, self.dtype).transpose(-1, -2)
        v = dequantize(self.qv, self.dtype)
        return torch.cat([k, self.res_k], -2), torch.cat([v, self.res_v], -2)

    def _flush(self) -> None:
        if self.bits >= 16:
            return
        r = self.res_k.shape[-2]
        if r < self.residual + self.group:
            return
        m = (r - self.residual) // self.group * self.group
        qk = quantize(self.res_k[:, :, :m].transpose(-1, -2).contiguous(), self.bits, self.group)
        qv = quantize(self.res_v[:, :, :m].contiguous(), self.bits, self._vgroup())
        self.qk = qk if self.qk is None else self.qk.cat(qk)
        self.qv = qv if self.qv is None else _cat_tokens(self.qv, qv)
        self.res_k, self.res_v = self.res_k[:, :, m:].clone(), self.res_v[:, :, m:].clone()
        self.n_q += m

    def crop(self, tokens_to_remove: int) -> None:
        t = self._check_crop(tokens_to_remove)
        if t == 0 or not self.is_initialized:
            return
        t = min(t, self.n)
        r = self.res_k.shape[-2]
        if t > r:  # re-expand whole quantized groups into the residual (lossy for those tokens)
            need = t - r
            g = -(-need // self.group) * self.group
            keep = self.n_q - g
            k = dequantize(self.qk.tail(keep), self.dtype).transpose(-1, -2)
            v = dequantize(_tail_tokens(self.qv, keep), self.dtype)
            self.res_k, self.res_v = torch.cat([k, self.res_k], -2), torch.cat([v, self.res_v], -2)
            self.qk = self.qk.head(keep) if keep else None
            self.qv = _head_tokens(self.qv, keep) if keep else None
            self.n_q = keep
        r = self.res_k.shape[-2]
        self.res_k, self.res_v = self.res_k[:, :, : r - t], self.res_v[:, :, : r - t]
        self.n -= t

    def reset(self) -> None:
        self.qk = self.qv = self.res_k = self.res_v = None
        self.n = self.n_q = 0
        self.is_initialized = False

    def nbytes(self) -> tuple[int, int]:
        q = (self.qk.nbytes + self.qv.nbytes) if self.qk is not None else 0
        return q + nbytes(self.res_k, self.res_v), 0


# Values are quantized along head_dim, so their token axis is -2: slice/cat there.
def _cat_tokens(a: QTensor, b: QTensor) -> QTensor:
    return QTensor(torch.cat([a.codes, b.codes], -2), torch.cat([a.scale, b.scale], -2),
                   torch.cat([a.zero, b.zero], -2), a.bits, a.group)


def _head_tokens(a: QTensor, n: int) -> QTensor:
    return QTensor(a.codes[:, :, :n], a.scale[:, :, :n], a.zero[:, :, :n], a.bits, a.group)


def _tail_tokens(a: QTensor, start: int) -> QTensor:
    return QTensor(a.codes[:, :, start:], a.scale[:, :, start:], a.zero[:, :, start:], a.bits, a.group)
