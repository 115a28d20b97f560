"""Several caches side by side in one batch: row i of every forward goes through cache i.

Why: on a CPU a decode step of a small model is bound by reading the weights, not by arithmetic, so
running N cache configurations over the same tokens as N batch rows costs about one row's time per
step. Each row is computed exactly as it would be alone (rows never mix in a transformer; only the
floating-point blocking of the batched matmuls differs). Used by ``benchmarks/kv_cache.py``; needs
``attn_implementation="presence_kv"``.

    cache = RowSplitCache([DynamicCache(config=c), make_cache("tailor", c, "cpu"), ...])
    model(input_ids=ids.expand(len(cache.caches), -1), cache=cache)   # ids [1, T] → rows [N, T]

``cache.caches[i]`` keeps its own layers (shared objects), so it can be used alone afterwards, e.g. to
time batch-1 decode steps at the context the split run reached.
"""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import Cache

from engine.kv.attention import ATTN_IMPLEMENTATION
from engine.kv.base import TAG, PresenceLayer, attend_chunk, tag


class RowSplitLayer(PresenceLayer):
    def __init__(self, layers):
        super().__init__()
        self.subs = list(layers)
        self._pending = None

    def update(self, key_states, value_states, *args, **kwargs):
        if key_states.shape[0] != len(self.subs):
            raise ValueError(f"row-split cache has {len(self.subs)} rows, the batch {key_states.shape[0]}")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._pending = [sub.update(key_states[i: i + 1], value_states[i: i + 1], *args, **kwargs)
                         for i, sub in enumerate(self.subs)]
        return tag(key_states, value_states, self)

    def attend(self, query: torch.Tensor, scaling: float) -> torch.Tensor:
        """query [N, Hq, q, D] → [N, q, Hq, D]: each row attends through its own cache layer."""
        outs = []
        for i, (k, v) in enumerate(self._pending):
            layer = getattr(k, TAG, None)
            if layer is not None:
                outs.append(layer.attend(query[i: i + 1], scaling))
            else:  # a layer that returned its whole context: plain causal attention, bottom-right aligned
                outs.append(attend_chunk(query[i: i + 1], k, v, scaling))
        self._pending = None
        return torch.cat(outs, 0)

    def get_seq_length(self) -> int:
        # derived from the rows, never counted here: a fork (fresh RowSplitLayers over copied rows) is right at once
        return self.subs[0].get_seq_length()

    def crop(self, tokens_to_remove: int) -> None:
        for sub in self.subs:
            sub.crop(tokens_to_remove)

    def reset(self) -> None:
        for sub in self.subs:
            sub.reset()
        self.is_initialized = False

    def nbytes(self) -> tuple[int, int]:
        raise NotImplementedError("ask the per-row caches (cache.caches[i])")


class RowSplitCache(Cache):
    attn_implementation = ATTN_IMPLEMENTATION

    def __init__(self, caches):
        self.caches = list(caches)
        n = {len(c.layers) for c in self.caches}
        if len(n) != 1:
            raise ValueError("row-split caches must have the same number of layers")
        super().__init__(layers=[RowSplitLayer(ls) for ls in zip(*(c.layers for c in self.caches), strict=True)])

    def fork(self) -> RowSplitCache:
        """An independent copy of every row's state (a snapshot to branch from)."""
        return RowSplitCache([_fork_cache(c) for c in self.caches])


def _fork_cache(cache):
    out = copy.copy(cache)
    out.layers = [_fork_layer(layer) for layer in cache.layers]
    return out


def _fork_layer(layer):
    from transformers.cache_utils import QuantizedLayer

    if isinstance(layer, QuantizedLayer):
        # quanto tensors cannot be deep-copied; its update only rebinds them (never writes in place), so a
        # shallow copy is an independent branch
        return copy.copy(layer)
    return copy.deepcopy(layer)
