"""Shared pieces of the Presence cache layers: the tiny interface and segment attention.

Every layer follows the same small contract (in the style of mlx-lm's ``models/cache.py``)::

    keys, values = layer.update(k_new, v_new)   # append; returns what attention needs
    layer.crop(-n)                              # rollback the last n tokens (HF sign convention)
    layer.reset()                               # chunk reset: empty, positions restart at 0
    layer.get_seq_length()                      # absolute tokens seen (drives RoPE positions)
    layer.nbytes() -> (fast, offload)           # bytes really held, per tier

Layers whose attention needs the query (sparse, sink) return the *new* tokens tagged with
``_presence_kv_layer``; the registered attention function (``attention.py``) then calls
``layer.attend(query, ...)``. Position policy: keys are stored after RoPE at their true absolute
positions and are never re-indexed; ``get_seq_length`` counts every token appended since the last
reset, so the model's default positions continue exactly as with ``DynamicCache``. Positions are bounded
by resetting the cache at each chunk boundary (DESIGN §4), not by shifting.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import CacheLayerMixin

from engine.kv.packed import packed_causal_sdpa

TAG = "_presence_kv_layer"


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def tag(keys: torch.Tensor, values: torch.Tensor, layer) -> tuple[torch.Tensor, torch.Tensor]:
    """Mark the tensors ``update`` returns so the attention function routes them to ``layer.attend``."""
    setattr(keys, TAG, layer)
    return keys, values


class PresenceLayer(CacheLayerMixin):
    """Common bookkeeping: ``n`` tokens seen; mask sizes always describe the logical full context."""

    is_sliding = False
    is_croppable = True
    supports_early_init = False

    def __init__(self, store_dtype: torch.dtype | None = None):
        super().__init__()
        self.n = 0
        self.device = None
        self.dtype = None
        self.store_dtype = store_dtype

    def lazy_initialization(self, key_states, value_states) -> None:
        # dtype: what attention computes in (the model's); sdtype: what full-precision windows are kept
        # in (e.g. fp16 under an fp32 model: half the bytes, attention still runs in fp32)
        self.device, self.dtype = key_states.device, key_states.dtype
        sd = self.store_dtype
        self.sdtype = sd if sd is not None and sd.itemsize < self.dtype.itemsize else self.dtype
        self.batch, self.heads, _, self.head_dim = key_states.shape
        self.is_initialized = True

    def get_seq_length(self) -> int:
        return self.n

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # One mask is built per forward for all layers; ours report the logical context so they agree. From
        # get_seq_length (as transformers' DynamicLayer), so a layer that derives its length (RowSplitLayer,
        # a fork of it) sizes the mask like its query offset: bottom-right aligned, no mask built.
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def nbytes(self) -> tuple[int, int]:
        raise NotImplementedError

    @staticmethod
    def _check_crop(tokens_to_remove: int) -> int:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count (tokens to remove), as transformers' DynamicLayer")
        return -tokens_to_remove


def attend_chunk(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float) -> torch.Tensor:
    """Fast path of ``attend_segments`` for the layout every Presence layer builds: the query's q tokens are
    the *last* q keys, and every earlier key is older than the chunk (sinks, fetched rows and window in any
    order). Then causality is the bottom-right q x q triangle, and grouped query heads are packed into the
    query axis so the keys are read in place (no ``repeat_interleave`` copy, no [Hq, q, T] position mask).

    query [B, Hq, q, D]; keys/values [B, Hkv, T, D] (T >= q, any dtype) → [B, q, Hq, D].
    """
    return packed_causal_sdpa(query, keys.to(query.dtype), values.to(query.dtype), scaling)


def attend_segments(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, key_pos: torch.Tensor,
                    q_start: int, scaling: float) -> torch.Tensor:
    """Exact softmax attention of ``query`` over an arbitrary set of cached tokens (the general, naive path:
    the reference ``attend_chunk`` is checked against).

    query [B, Hq, q, D]; keys/values [B, Hkv, T, D]; key_pos [T] or [B, Hkv, T] absolute positions;
    the query at row i sits at position ``q_start + i`` and sees keys with position <= its own.
    Returns [B, q, Hq, D] (the layout transformers' attention functions return).
    """
    b, hq, q, _ = query.shape
    rep = hq // keys.shape[1]
    if rep > 1:
        keys = keys.repeat_interleave(rep, dim=1)
        values = values.repeat_interleave(rep, dim=1)
        if key_pos.dim() == 3:
            key_pos = key_pos.repeat_interleave(rep, dim=1)
    qpos = torch.arange(q_start, q_start + q, device=query.device)
    mask = key_pos.to(query.device).unsqueeze(-2) <= qpos.unsqueeze(-1)  # [..., q, T]
    if mask.dim() == 2:
        mask = mask[None, None]
    out = torch.nn.functional.scaled_dot_product_attention(query, keys.to(query.dtype), values.to(query.dtype),
                                                           attn_mask=mask, scale=scaling)
    return out.transpose(1, 2).contiguous()
