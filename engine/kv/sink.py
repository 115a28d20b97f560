"""StreamingLLM-style baseline: attention sinks + a recent window; everything else is dropped.

    tokens  0 .... S ......(evicted)...... n-W ............ n_prev ...... n
            ├ sinks ┤                       ├─ recent window ─┤├ new chunk ┤   all fp on the fast tier

Positions are the true absolute ones (no StreamingLLM position shift: M-RoPE keys cannot be cheaply
re-rotated), so quality beyond the model's trained range is not promised; the chunk reset bounds it.
A crop deeper than the window cannot bring evicted tokens back.
"""

from __future__ import annotations

import torch

from engine.kv.base import PresenceLayer, attend_chunk, nbytes, tag


class SinkLayer(PresenceLayer):
    def __init__(self, sinks: int = 8, window: int = 248, store_dtype: torch.dtype | None = None):
        super().__init__(store_dtype)
        self.sinks, self.window = sinks, window
        self.sink_k = self.sink_v = self.win_k = self.win_v = None
        self._pending = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.sink_k = self.sink_v = self.win_k = self.win_v = key_states[:, :, :0].to(self.sdtype)
        if self._pending is not None:
            raise RuntimeError("the sink KV cache needs attn_implementation='presence_kv'")
        # evict what left the window during the previous call, now that nobody needs it
        self.win_k, self.win_v = self.win_k[:, :, -self.window:], self.win_v[:, :, -self.window:]
        q = key_states.shape[-2]
        ks, vs = key_states.to(self.sdtype), value_states.to(self.sdtype)
        to_sink = max(0, min(q, self.sinks - self.n))
        self.sink_k = torch.cat([self.sink_k, ks[:, :, :to_sink]], -2)
        self.sink_v = torch.cat([self.sink_v, vs[:, :, :to_sink]], -2)
        self.win_k = torch.cat([self.win_k, ks[:, :, to_sink:]], -2)
        self.win_v = torch.cat([self.win_v, vs[:, :, to_sink:]], -2)
        self._pending = self.n
        self.n += q
        return tag(key_states, value_states, self)

    def attend(self, query: torch.Tensor, scaling: float) -> torch.Tensor:
        self._pending = None
        # keys in position order: sinks, then the window, which ends with this call's new tokens
        keys = torch.cat([self.sink_k, self.win_k], -2)
        values = torch.cat([self.sink_v, self.win_v], -2)
        return attend_chunk(query, keys, values, scaling)

    def crop(self, tokens_to_remove: int) -> None:
        t = min(self._check_crop(tokens_to_remove), self.n)
        if t == 0 or not self.is_initialized:
            return
        self._pending = None
        self.n -= t
        self.sink_k, self.sink_v = self.sink_k[:, :, : self.n], self.sink_v[:, :, : self.n]
        w = max(0, self.win_k.shape[-2] - t)
        self.win_k, self.win_v = self.win_k[:, :, :w], self.win_v[:, :, :w]

    def reset(self) -> None:
        self.sink_k = self.sink_v = self.win_k = self.win_v = None
        self.n, self._pending, self.is_initialized = 0, None, False

    def nbytes(self) -> tuple[int, int]:
        return nbytes(self.sink_k, self.sink_v, self.win_k, self.win_v), 0
