"""The one cache factory (``make_cache``) and the one switch of a model onto the caches' attention (``attach``).

``full`` means the same cache everywhere (the app, the tests, the benchmarks): ``GrowingDynamicCache``,
or transformers' stock ``DynamicCache`` when ``options.growable`` is off.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.kv import KINDS
from engine.kv.attention import register, use
from engine.kv.cache import PresenceCache
from engine.kv.kivi import KiviLayer
from engine.kv.options import KVOptions
from engine.kv.plan import LayerPlan, plan_path_for
from engine.kv.sink import SinkLayer
from engine.kv.sparse import SparseLayer


def attach(model, kind: str, options: KVOptions | dict[str, Any] | None = None) -> None:
    """Switch ``model``'s text attention to what a ``kind`` cache needs (the vision tower keeps its own):
    ``presence_kv`` for every kind, stock SDPA for ``full`` with ``fast_attention`` off."""
    o = KVOptions.of(options)
    if kind not in KINDS:
        raise ValueError(f"unknown kv_cache kind {kind!r} (expected one of {', '.join(KINDS)})")
    use(model, "sdpa" if kind == "full" and not o.fast_attention else register())


def make_cache(kind: str, model_config, device, options: KVOptions | dict[str, Any] | None = None, *,
               model_path: str = "", plan: LayerPlan | dict | str | None = None):
    """A transformers ``Cache`` of ``kind`` for a model with ``model_config`` on ``device``.

    ``plan`` (tailor) overrides ``options.plan``: a LayerPlan, a dict with ``quantized_layers``, or a JSON path;
    without either, the plan beside ``model_path`` or the default one.
    """
    from transformers import DynamicCache, QuantizedCache

    from engine.kv.full import GrowingDynamicCache

    raw = dict(options) if isinstance(options, dict) else None
    if raw is not None and "plan" in raw and not isinstance(raw["plan"], str):  # a dict / LayerPlan in code
        plan = raw.pop("plan") if plan is None else plan
    o = KVOptions.of(raw if raw is not None else options)
    text = model_config.get_text_config(decoder=True) if hasattr(model_config, "get_text_config") else model_config
    n_layers = int(text.num_hidden_layers)
    # tailor's quantized layers default to 4-bit: 2-bit KIVI on SmolLM2's three dense layers alone costs +0.4 PPL
    # at 8k, 4-bit +0.04 (benchmarks/kv_cache.py); a plain quantized cache keeps KIVI's 2-bit
    bits = o.bits or (4 if kind == "tailor" else 2)
    sd = _store_dtype(o.store_dtype, lossy=bits < 16 and kind != "sink")
    if kind == "full":
        return GrowingDynamicCache(config=model_config) if o.growable else DynamicCache(config=model_config)
    if kind == "quantized":
        if o.backend == "quanto":
            return QuantizedCache("quanto", model_config, nbits=bits, q_group_size=o.group, residual_length=o.residual)
        return PresenceCache([KiviLayer(bits, o.group, o.residual, store_dtype=sd) for _ in range(n_layers)], kind)
    if kind == "sink":
        return PresenceCache([SinkLayer(o.sinks, o.window or 248, store_dtype=sd) for _ in range(n_layers)], kind)
    if kind == "tailor":
        lp = _resolve_plan(plan if plan is not None else o.plan, model_path, n_layers)
        on_cuda = str(device).startswith("cuda")
        # the compact 8-bit store where the offload tier is the same RAM as the fast tier (a CPU-only run) and
        # the cache is lossy anyway; fp rows in pinned host memory beside a GPU, and for the exact bits=16 cache
        store_bits = o.store_bits or (8 if bits < 16 and not on_cuda else 16)
        q = set(lp.quantized_layers)
        layers = [KiviLayer(bits, o.group, o.residual, store_dtype=sd) if i in q else
                  SparseLayer.from_options(o, offload_device="cpu" if on_cuda else (o.offload_device or None),
                                           store_dtype=sd, store_bits=store_bits)
                  for i in range(n_layers)]
        cache = PresenceCache(layers, kind)
        cache.plan = lp
        return cache
    raise ValueError(f"unknown kv_cache kind {kind!r} (expected one of {', '.join(KINDS)})")


def _resolve_plan(plan, model_path: str, num_layers: int) -> LayerPlan:
    if isinstance(plan, LayerPlan):
        pass
    elif isinstance(plan, dict):
        plan = LayerPlan(num_layers=num_layers, quantized_layers=list(plan.get("quantized_layers", [0])))
    elif plan:
        plan = LayerPlan.load(plan)
    elif model_path and plan_path_for(model_path).is_file():
        plan = LayerPlan.load(plan_path_for(model_path))
    else:
        plan = LayerPlan.default(num_layers)
    if plan.num_layers != num_layers:
        raise ValueError(f"KV layer plan has {plan.num_layers} layers, the model {num_layers}")
    return plan


def _store_dtype(name: str, lossy: bool) -> torch.dtype | None:
    if name == "auto":
        return torch.float16 if lossy else None
    if name == "model":
        return None
    if name not in ("float16", "bfloat16"):
        raise ValueError(f"store_dtype must be auto, float16, bfloat16 or model, got {name!r}")
    return getattr(torch, name)
