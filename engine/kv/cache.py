"""The cache container (a transformers ``Cache`` over Presence layers) and the one byte count of any cache."""

from __future__ import annotations

from dataclasses import dataclass

from transformers.cache_utils import Cache

from engine.kv.attention import ATTN_IMPLEMENTATION


@dataclass(frozen=True)
class KVBytes:
    """Bytes a cache holds. ``fast`` + ``offload`` = allocated (capacity, spare room included) on the model's
    device and in host memory; ``used`` = the part that holds tokens (<= fast + offload)."""

    fast: int = 0
    offload: int = 0
    used: int = 0


class PresenceCache(Cache):
    """A heterogeneous list of layers (``KiviLayer`` / ``SparseLayer`` / ``SinkLayer``).

    Use with ``attn_implementation="presence_kv"`` (``engine.kv.ATTN_IMPLEMENTATION``). ``crop(-n)``
    rolls back the last n tokens, ``reset()`` is the chunk reset; ``kv_bytes(cache)`` counts it.
    """

    attn_implementation = ATTN_IMPLEMENTATION

    def __init__(self, layers, kind: str = ""):
        super().__init__(layers=layers)
        self.kind = kind


def kv_bytes(cache) -> KVBytes:
    """Bytes of any cache: layers with ``nbytes()`` (every Presence layer, ``GrowingLayer``) report exactly,
    per tier; other layers (stock ``DynamicCache``, quanto) count the tensors they hold, all used."""
    fast = off = used = 0
    for layer in getattr(cache, "layers", []):
        if callable(getattr(layer, "nbytes", None)):
            f, o = layer.nbytes()
            fast, off = fast + f, off + o
            used += layer.used_nbytes() if hasattr(layer, "used_nbytes") else f + o
            continue
        n = 0
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "numel"):
                n += t.numel() * t.element_size()
        for name in ("_quantized_keys", "_quantized_values"):
            q = getattr(layer, name, None)
            if q is not None:
                n += _quanto_bytes(q)
        fast, used = fast + n, used + n
    return KVBytes(fast, off, used)


def _quanto_bytes(q) -> int:
    """optimum-quanto tensors wrap their packed data, scale and shift; count the plain tensors inside."""
    if type(q).__name__ == "Tensor" or not any(hasattr(q, a) for a in ("_data", "_scale", "_shift")):
        return q.numel() * q.element_size()
    return sum(_quanto_bytes(getattr(q, a)) for a in ("_data", "_scale", "_shift") if getattr(q, a, None) is not None)
