"""The attention function and mask function registered with transformers as ``presence_kv``.

Why a custom function: sparse and sink layers choose their context with the query, which only the
attention function sees. ``update`` returns the new tokens tagged with their layer; this function
hands the query to ``layer.attend``. Untagged tensors (full or KIVI layers, a plain DynamicCache)
get causal SDPA, bottom-right aligned so a multi-token chunk after a cached prefix is right, with the
grouped query heads packed so the keys are read in place (``torch_attention.packed_causal_sdpa``).

The mask function returns ``None`` (causality is applied from absolute positions inside ``attend``);
padded batches are refused with one clear error instead of being silently mis-masked.
"""

from __future__ import annotations

import torch

from engine.backends.torch_attention import packed_causal_sdpa
from engine.kv.base import TAG

ATTN_IMPLEMENTATION = "presence_kv"


def presence_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                       **kwargs):
    """query [B, Hq, q, D]; key/value [B, Hkv, T, D] → ([B, q, Hq, D], None)."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    layer = getattr(key, TAG, None)
    if layer is not None:
        return layer.attend(query, scaling), None
    if attention_mask is None and getattr(module, "is_causal", True) and not dropout:
        # a whole context (full or KIVI layer, DynamicCache, QuantizedCache): bottom-right causal, GQA packed
        return packed_causal_sdpa(query, key, value, scaling), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  **kwargs)


def presence_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                  attention_mask=None, **kwargs):
    if attention_mask is not None and not bool(torch.as_tensor(attention_mask).all()):
        raise ValueError("the presence KV cache does not support padded batches (batch 1, no padding)")
    return None


def register() -> str:
    """Register both functions (idempotent); returns the name to pass as ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, presence_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, presence_mask)
    return ATTN_IMPLEMENTATION
