"""KV caches for the torch backend: full, KIVI-quantized, StreamingLLM sink, and TailorKV hybrid.

``make_cache(kind, model_config, device, options)`` is the one entry point. For ``tailor`` and
``sink`` the model must run with ``attn_implementation="presence_kv"`` (``ATTN_IMPLEMENTATION``;
registered on import); ``full`` and ``quantized`` work with any attention implementation.

Options (all optional): ``plan`` (a LayerPlan, a dict or a JSON path), ``model_path`` (looks for the
plan beside the model), ``bits`` (KIVI bits: 4 for tailor's quantized layers, 2 for ``quantized``;
16 = unquantized), ``group`` (64), ``residual`` (128), ``top_k`` (512: rows a decoded token fetches per
sparse layer), ``chunk_top_k`` (4 x top_k: rows a multi-token chunk fetches), ``rerank`` (4: the sketch
shortlists rerank x k rows, their exact keys pick k; 1 = sketch only), ``score_queries`` (64: chunk
tokens that score), ``sinks`` (8), ``window`` (120 tailor / 248 sink), ``channels`` (8),
``sketch_bits`` (2; 16 = exact sketch), ``store_bits`` ("auto": 8 on a CPU-only run of a lossy cache,
else 16: the offload store's rows, store.py), ``backend`` (quantized: "kivi" | "quanto"), ``store_dtype``
("auto" | "float16" | "bfloat16" | "model": what full-precision windows, residuals and the offload store
are held in; "auto" = float16 under a 32-bit model when ``bits`` < 16, else the model's dtype; storage
never upcasts, and attention always computes in the model's dtype).
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.kv.attention import ATTN_IMPLEMENTATION, register
from engine.kv.cache import PresenceCache, kv_bytes
from engine.kv.kivi import KiviLayer
from engine.kv.plan import LayerPlan, plan_path_for
from engine.kv.sink import SinkLayer
from engine.kv.sparse import SparseLayer

KINDS = ("full", "tailor", "quantized", "sink")
register()

__all__ = ["ATTN_IMPLEMENTATION", "KINDS", "KiviLayer", "LayerPlan", "PresenceCache", "SinkLayer", "SparseLayer",
           "kv_bytes", "make_cache", "needs_presence_attention", "plan_path_for", "register"]


def needs_presence_attention(kind: str) -> bool:
    return kind in ("tailor", "sink")


def _resolve_plan(options: dict, num_layers: int) -> LayerPlan:
    plan = options.get("plan")
    if isinstance(plan, LayerPlan):
        pass
    elif isinstance(plan, dict):
        plan = LayerPlan(num_layers=num_layers, quantized_layers=list(plan.get("quantized_layers", [0])))
    elif plan:
        plan = LayerPlan.load(plan)
    elif options.get("model_path") and plan_path_for(options["model_path"]).is_file():
        plan = LayerPlan.load(plan_path_for(options["model_path"]))
    else:
        plan = LayerPlan.default(num_layers)
    if plan.num_layers != num_layers:
        raise ValueError(f"KV layer plan has {plan.num_layers} layers, the model {num_layers}")
    return plan


def _store_dtype(o: dict, lossy: bool) -> torch.dtype | None:
    name = str(o.get("store_dtype", "auto"))
    if name == "auto":
        return torch.float16 if lossy else None
    if name == "model":
        return None
    if name not in ("float16", "bfloat16"):
        raise ValueError(f"store_dtype must be auto, float16, bfloat16 or model, got {name!r}")
    return getattr(torch, name)


def make_cache(kind: str, model_config, device, options: dict | None = None):
    """A transformers ``Cache`` of the given kind for a model with ``model_config`` running on ``device``."""
    from transformers import DynamicCache, QuantizedCache

    o = dict(options or {})
    text = model_config.get_text_config(decoder=True) if hasattr(model_config, "get_text_config") else model_config
    n_layers = int(text.num_hidden_layers)
    # tailor's quantized layers default to 4-bit: 2-bit KIVI on SmolLM2's three dense layers alone costs +0.4 PPL
    # at 8k, 4-bit +0.04 (benchmarks/kv_cache.py); a plain quantized cache keeps KIVI's 2-bit
    bits = int(o.get("bits", 4 if kind == "tailor" else 2))
    group, residual = int(o.get("group", 64)), int(o.get("residual", 128))
    sd = _store_dtype(o, lossy=bits < 16 and kind != "sink")
    if kind == "full":
        return DynamicCache(config=model_config)
    if kind == "quantized":
        if o.get("backend", "kivi") == "quanto":
            return QuantizedCache("quanto", model_config, nbits=bits, q_group_size=group, residual_length=residual)
        return PresenceCache([KiviLayer(bits, group, residual, store_dtype=sd) for _ in range(n_layers)], kind)
    if kind == "sink":
        return PresenceCache([SinkLayer(int(o.get("sinks", 8)), int(o.get("window", 248)), store_dtype=sd)
                              for _ in range(n_layers)], kind)
    if kind == "tailor":
        plan = _resolve_plan(o, n_layers)
        q = set(plan.quantized_layers)
        on_cuda = str(device).startswith("cuda")
        offload = "cpu" if on_cuda else o.get("offload_device")

        top_k = int(o.get("top_k", 512))
        # the compact 8-bit store where the offload tier is the same RAM as the fast tier (a CPU-only run) and
        # the cache is lossy anyway; fp rows in pinned host memory beside a GPU, and for the exact bits=16 cache
        store_bits = o.get("store_bits", "auto")
        store_bits = int(store_bits) if store_bits != "auto" else (
            8 if bits < 16 and not on_cuda else 16)

        def sparse():
            return SparseLayer(top_k=top_k, sinks=int(o.get("sinks", 8)), window=int(o.get("window", 120)),
                               channels=int(o.get("channels", 8)), sketch_bits=int(o.get("sketch_bits", 2)),
                               group=group, offload_device=offload, store_dtype=sd,
                               chunk_top_k=int(o.get("chunk_top_k", 4 * top_k)),
                               score_queries=int(o.get("score_queries", 64)), rerank=int(o.get("rerank", 4)),
                               store_bits=store_bits)
        layers = [KiviLayer(bits, group, residual, store_dtype=sd) if i in q else sparse() for i in range(n_layers)]
        cache = PresenceCache(layers, kind)
        cache.plan = plan
        return cache
    raise ValueError(f"unknown kv_cache kind {kind!r} (expected one of {', '.join(KINDS)})")


def find_plan(model: str | Path) -> Path | None:
    p = plan_path_for(model)
    return p if p.is_file() else None
