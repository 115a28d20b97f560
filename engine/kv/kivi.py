"""KIVI-style quantized layer: the whole history stays on the fast tier, compressed.

Memory layout of one layer (B batch, H kv heads, D head_dim, G = group = 64, R = residual = 128)::

    tokens  0 ............................ n_q | n_q ............ n
            ├── quantized, whole G-groups ──────┤├─ fp residual ─┤  (R <= len < R + G once warm)
    keys:   codes [B, H, D, n_q*b/8]  (per channel: a group = 64 tokens of one channel)
            scale/zero fp16 [B, H, D, n_q/G]
    values: codes [B, H, n_q, D*b/8]  (per token: a group = 64 channels of one token)
            scale/zero fp16 [B, H, n_q, D/Gv]

Flushing: once the residual reaches R + G tokens, its oldest whole groups are quantized so that R
tokens stay in full precision; the quantized length is a function of n alone,
n_q(n) = max(0, (n - R) // G * G). A full-precision *shadow* of the last ``rollback`` (R + G) flushed
tokens stays on the fast tier (counted in ``nbytes``), so a rollback (``crop``) of up to R tokens
re-expands the groups it un-flushes exactly: the layer ends bit-identical to one fed the shorter
stream. A deeper crop re-expands from the codes (those tokens keep their dequantized values).
``bits=16`` keeps everything in full precision (the exactness baseline). ``store_dtype`` (e.g. fp16
under an fp32 model) is what the residual and shadow are held in; attention computes in the model's dtype.
"""

from __future__ import annotations

import torch

from engine.kv.base import PresenceLayer, nbytes
from engine.kv.quant import GrowingQTensor, QTensor, dequantize, quantize


class KiviLayer(PresenceLayer):
    def __init__(self, bits: int = 2, group: int = 64, residual: int = 128, rollback: int | None = None,
                 store_dtype: torch.dtype | None = None):
        super().__init__(store_dtype)
        self.rollback = residual + group if rollback is None else rollback
        self.shadow_k = self.shadow_v = None  # fp copies of the last flushed tokens [B, H, <=rollback, D]
        if residual % group:
            raise ValueError("residual must be a multiple of the group size")
        self.bits, self.group, self.residual = bits, group, residual
        self.qk = GrowingQTensor(-1)  # over keys^T: [B, H, D, n_q], grown in place (grow.py)
        self.qv = GrowingQTensor(-2)  # over values: [B, H, n_q, D]
        self.n_q = 0
        self.res_k = self.res_v = None  # [B, H, r, D]

    def _vgroup(self) -> int:
        return min(self.group, self.head_dim)

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.res_k, self.res_v = key_states[:, :, :0].to(self.sdtype), value_states[:, :, :0].to(self.sdtype)
        self.res_k = torch.cat([self.res_k, key_states.to(self.sdtype)], -2)
        self.res_v = torch.cat([self.res_v, value_states.to(self.sdtype)], -2)
        self.n += key_states.shape[-2]
        keys, values = self._dense()
        self._flush()
        return keys, values

    def _dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Dequantized history + residual: a transient full-precision copy for this layer's attention."""
        rk, rv = self.res_k.to(self.dtype), self.res_v.to(self.dtype)
        if not self.n_q:
            return rk, rv
        k = dequantize(self.qk.view(), self.dtype).transpose(-1, -2)
        v = dequantize(self.qv.view(), self.dtype)
        return torch.cat([k, rk], -2), torch.cat([v, rv], -2)

    def _flush(self) -> None:
        if self.bits >= 16:
            return
        r = self.res_k.shape[-2]
        if r < self.residual + self.group:
            return
        m = (r - self.residual) // self.group * self.group
        qk = quantize(self.res_k[:, :, :m].transpose(-1, -2).contiguous(), self.bits, self.group)
        qv = quantize(self.res_v[:, :, :m].contiguous(), self.bits, self._vgroup())
        self.qk.append(qk)
        self.qv.append(qv)
        if self.rollback:
            sk = self.res_k[:, :, :m] if self.shadow_k is None else torch.cat([self.shadow_k, self.res_k[:, :, :m]], -2)
            sv = self.res_v[:, :, :m] if self.shadow_v is None else torch.cat([self.shadow_v, self.res_v[:, :, :m]], -2)
            self.shadow_k, self.shadow_v = sk[:, :, -self.rollback:], sv[:, :, -self.rollback:]
        self.res_k, self.res_v = self.res_k[:, :, m:].clone(), self.res_v[:, :, m:].clone()
        self.n_q += m

    def crop(self, tokens_to_remove: int) -> None:
        t = self._check_crop(tokens_to_remove)
        if t == 0 or not self.is_initialized:
            return
        n_new = self.n - min(t, self.n)
        target = max(0, (n_new - self.residual) // self.group * self.group) if self.bits < 16 else 0
        target = min(target, self.n_q)
        if self.n_q > target:  # un-flush whole groups: exact from the shadow, else from the codes
            g = self.n_q - target
            shadow = 0 if self.shadow_k is None else self.shadow_k.shape[-2]
            if shadow >= g:
                k, v = self.shadow_k[:, :, shadow - g:], self.shadow_v[:, :, shadow - g:]
                self.shadow_k, self.shadow_v = self.shadow_k[:, :, : shadow - g], self.shadow_v[:, :, : shadow - g]
            else:
                k = dequantize(self.qk.view().tail(target), self.sdtype).transpose(-1, -2)
                v = dequantize(_tail_tokens(self.qv.view(), target), self.sdtype)
                self.shadow_k = self.shadow_v = None
            self.res_k, self.res_v = torch.cat([k, self.res_k], -2), torch.cat([v, self.res_v], -2)
            self.qk.truncate(target)
            self.qv.truncate(target)
            self.n_q = target
        keep = n_new - self.n_q
        self.res_k, self.res_v = self.res_k[:, :, :keep], self.res_v[:, :, :keep]
        self.n = n_new

    def reset(self) -> None:
        self.qk, self.qv = GrowingQTensor(-1), GrowingQTensor(-2)
        self.res_k = self.res_v = self.shadow_k = self.shadow_v = None
        self.n = self.n_q = 0
        self.is_initialized = False

    def nbytes(self) -> tuple[int, int]:
        return self.qk.nbytes + self.qv.nbytes + nbytes(self.res_k, self.res_v, self.shadow_k, self.shadow_v), 0

    def used_nbytes(self) -> int:
        return self.qk.used_nbytes + self.qv.used_nbytes + nbytes(self.res_k, self.res_v, self.shadow_k, self.shadow_v)


# Values are quantized along head_dim, so their token axis is -2.
def _tail_tokens(a: QTensor, start: int) -> QTensor:
    return QTensor(a.codes[:, :, start:], a.scale[:, :, start:], a.zero[:, :, start:], a.bits, a.group)
