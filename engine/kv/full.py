"""The ``full`` cache: a transformers DynamicCache whose layers grow in place instead of concatenating.

transformers' ``DynamicLayer.update`` does ``torch.cat([keys, new])``: each decoded token copies the
whole history, so a tick costs O(context) even when only a few tokens are new (grow.py has the numbers).
These layers keep keys and values in ``grow.Growing`` buffers and hand attention a view of the filled
part, so appending is O(new tokens) and ``crop(-n)`` just moves the fill mark. Same public Cache API::

    keys    [B, H, capacity, D]   view [B, H, :n, D] handed to attention
    values  [B, H, capacity, D]
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from engine.kv.grow import Growing


class GrowingLayer(DynamicLayer):
    """keys / values: views [B, H, n, D] of buffers [B, H, capacity, D]."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._k, self._v = Growing(-2, min_capacity=256), Growing(-2, min_capacity=256)
        self.keys = key_states[..., :0, :]
        self.values = value_states[..., :0, :]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._k.append(key_states)
        self._v.append(value_states)
        self.keys, self.values = self._k.view(), self._v.view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._k.n if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count (tokens to remove from the end)")
        if tokens_to_remove == 0 or not self.is_initialized or self._k.buf is None:
            return
        n = max(0, self._k.n + tokens_to_remove)
        self._k.truncate(n)
        self._v.truncate(n)
        self.keys, self.values = self._k.view(), self._v.view()

    def nbytes(self) -> tuple[int, int]:
        """(fast, offload) bytes allocated: filled part plus spare capacity, all on the model's device."""
        return (self._k.nbytes + self._v.nbytes, 0) if self.is_initialized else (0, 0)

    def used_nbytes(self) -> int:
        return self._k.used_nbytes + self._v.used_nbytes if self.is_initialized else 0


class GrowingDynamicCache(DynamicCache):
    """A transformers DynamicCache with ``GrowingLayer`` in place of every plain ``DynamicLayer``."""

    def __init__(self, config=None):
        super().__init__(config=config)
        if self.layers and all(type(layer) is DynamicLayer for layer in self.layers):
            self.layers = [GrowingLayer() for _ in self.layers]
        elif not self.layers:
            self.layer_class_to_replicate = GrowingLayer
