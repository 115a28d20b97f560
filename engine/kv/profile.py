"""Offline layer profiling for the TailorKV plan (``presence kv profile``); its calibration text is ``text.long_text``.

Profiling runs one forward over a calibration input with a temporary attention function that, per
layer, scores the last ``last_q`` queries (``plan.dense_score``) and then attends normally with SDPA.
"""

from __future__ import annotations

import torch

from engine.kv.attention import text_impl, use
from engine.kv.plan import LayerPlan, dense_score

PROFILE_IMPL = "presence_kv_profile"


def profile_layers(model, input_ids: torch.Tensor, top_frac: float = 0.05, last_q: int = 32,
                   threshold: float = 0.2, **forward_kw) -> LayerPlan:
    """One forward over ``input_ids`` [1, T]; returns the plan with per-layer dense-preference scores."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    scores: dict[int, float] = {}

    def fn(module, query, key, value, attention_mask, scaling=None, **kw):
        idx = getattr(module, "layer_idx", None)
        if idx is not None and getattr(module, "is_causal", True):
            s = scaling if scaling is not None else query.shape[-1] ** -0.5
            scores[idx] = dense_score(query, key, s, top_frac, last_q)
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kw)

    AttentionInterface.register(PROFILE_IMPL, fn)
    AttentionMaskInterface.register(PROFILE_IMPL, sdpa_mask)
    cfg = model.config
    old = text_impl(model)
    use(model, PROFILE_IMPL)  # temporary: the profiling pass only
    try:
        with torch.no_grad():
            model(input_ids=input_ids.to(model.device), use_cache=False, **forward_kw)
    finally:
        use(model, old)
    n_layers = cfg.get_text_config().num_hidden_layers
    if len(scores) != n_layers:
        raise RuntimeError(f"profiled {len(scores)} of {n_layers} layers (unsupported attention layout)")
    return LayerPlan.from_scores([scores[i] for i in range(n_layers)], threshold=threshold, top_frac=top_frac,
                                 last_q=last_q)
