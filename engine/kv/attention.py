"""The one attention function (and mask function) Presence registers with transformers: ``presence_kv``.

Why a custom function: sparse and sink layers choose their context with the query, which only the
attention function sees. Their ``update`` returns the new tokens tagged with their layer; this function
hands the query to ``layer.attend``. Untagged tensors (a full ``GrowingLayer``, a KIVI layer, a stock
``DynamicCache`` or ``QuantizedCache``) in the plain causal case get packed causal SDPA (``packed.py``):
bottom-right aligned so a multi-token chunk after a cached prefix is right, grouped query heads packed so
the keys are read in place, no materialised mask. Anything unusual (padding, a custom mask function, a
sliding window, a non-causal module, dropout) takes transformers' own SDPA path with its own mask.

The mask function returns ``None`` for the plain causal case (causality is applied inside), else the
stock SDPA mask. A padded batch reaching a tagged layer is refused with one clear error.
"""

from __future__ import annotations

import torch

from engine.kv.base import TAG
from engine.kv.packed import packed_causal_sdpa

ATTN_IMPLEMENTATION = "presence_kv"


def presence_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                       **kwargs):
    """query [B, Hq, q, D]; key/value [B, Hkv, T, D] → ([B, q, Hq, D], None)."""
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    layer = getattr(key, TAG, None)
    if layer is not None:
        if attention_mask is not None:
            # the mask function builds a mask only for padding or a layout that is not bottom-right aligned (a layer
            # whose mask sizes disagree with its length); either way the layer's own attention would ignore it
            raise ValueError("the presence KV cache does not support padded batches (batch 1, no padding) "
                             f"and got a [{', '.join(map(str, attention_mask.shape))}] attention mask")
        return layer.attend(query, scaling), None
    unusual = (attention_mask is not None or kwargs.get("sliding_window") or kwargs.get("softcap")
               or not getattr(module, "is_causal", True) or is_causal is False or dropout)
    if not unusual:
        return packed_causal_sdpa(query, key, value, scaling), None
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)


def presence_mask(*args, **kwargs):
    """No mask for the plain causal, unpadded, bottom-right aligned case; else the stock SDPA mask."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    am = kwargs.get("attention_mask")
    # bottom-right layout: the chunk's last query is the last key (every Presence cache; not a static one)
    aligned = kwargs.get("q_offset", 0) + kwargs.get("q_length", -1) == kwargs.get("kv_offset", 0) + kwargs.get(
        "kv_length", -2)
    plain = (kwargs.get("mask_function", causal_mask_function) is causal_mask_function and not args and aligned
             and (am is None or bool(torch.as_tensor(am).all())) and not kwargs.get("local_size"))
    return None if plain else sdpa_mask(*args, **kwargs)


def register() -> str:
    """Register both functions (idempotent); returns the name to pass as ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, presence_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, presence_mask)
    return ATTN_IMPLEMENTATION


def use(model, impl: str) -> None:
    """Switch only the text model's attention to ``impl`` (the vision tower keeps its own)."""
    cfg = model.config
    sub = hasattr(cfg, "get_text_config") and cfg.get_text_config() is not cfg
    model.set_attn_implementation({"text_config": impl} if sub else impl)


def text_impl(model) -> str:
    """The text model's attention implementation now."""
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return getattr(text, "_attn_implementation", None) or "sdpa"


# Registered as soon as the name can be read: a model loaded with attn_implementation=ATTN_IMPLEMENTATION
# (tests, benchmarks, rows.py users) must find it without a separate call.
register()
