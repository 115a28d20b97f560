"""How tokens are stored and attended: every KV cache of the torch backend, and the attention they run on.

``make_cache(kind, model_config, device, options)`` is the one factory, for the app and the benchmarks:

    kind        layers                                      attention (``ATTN_IMPLEMENTATION``)
    full        GrowingLayer: fp K/V grown in place         packed causal SDPA (options.fast_attention)
    quantized   KiviLayer: 2-bit KIVI + fp residual         packed causal SDPA (kivi) / any (quanto)
    sink        SinkLayer: first sinks + recent window      the layer's own (needs ``presence_kv``)
    tailor      SparseLayer (+ KiviLayer where the plan     the layer's own (needs ``presence_kv``)
                says dense): sketch, top-k fetch, window

Options are one ``KVOptions`` (options.py; every field a setting, documented in docs/kv_cache.md).
``kv_bytes(cache)`` counts any cache's bytes (allocated per tier, and used). ``sizes`` holds the bytes per
element table shared with the llama.cpp backend and the VRAM estimate. Importing this package is light:
torch and transformers load on first use of a name below.
"""

from __future__ import annotations

import importlib

KINDS = ("full", "tailor", "quantized", "sink")

_LAZY = {
    "ATTN_IMPLEMENTATION": "engine.kv.attention", "register": "engine.kv.attention", "use": "engine.kv.attention",
    "text_impl": "engine.kv.attention", "KVBytes": "engine.kv.cache", "PresenceCache": "engine.kv.cache",
    "kv_bytes": "engine.kv.cache", "GrowingDynamicCache": "engine.kv.full", "KiviLayer": "engine.kv.kivi",
    "LayerPlan": "engine.kv.plan", "plan_path_for": "engine.kv.plan", "SinkLayer": "engine.kv.sink",
    "SparseLayer": "engine.kv.sparse", "make_cache": "engine.kv.factory", "attach": "engine.kv.factory",
    "KVOptions": "engine.kv.options",
}

__all__ = ["KINDS", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine.kv' has no attribute {name!r}")
