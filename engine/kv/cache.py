"""The cache container: a transformers ``Cache`` over a per-layer list of Presence layers."""

from __future__ import annotations

from transformers.cache_utils import Cache

from engine.kv.attention import ATTN_IMPLEMENTATION


class PresenceCache(Cache):
    """A heterogeneous list of layers (``KiviLayer`` / ``SparseLayer`` / ``SinkLayer``).

    Use with ``attn_implementation="presence_kv"`` (``engine.kv.ATTN_IMPLEMENTATION``). ``crop(-n)``
    rolls back the last n tokens, ``reset()`` is the chunk reset, ``kv_bytes()`` the per-tier bytes.
    """

    attn_implementation = ATTN_IMPLEMENTATION

    def __init__(self, layers, kind: str = ""):
        super().__init__(layers=layers)
        self.kind = kind

    def kv_bytes(self) -> tuple[int, int]:
        """(fast-tier bytes, offload-tier bytes) really held, summed over layers."""
        fast = off = 0
        for layer in self.layers:
            f, o = layer.nbytes()
            fast, off = fast + f, off + o
        return fast, off


def kv_bytes(cache) -> tuple[int, int]:
    """Per-tier bytes of any cache: ours report exactly; others count the tensors they hold (fast tier)."""
    if hasattr(cache, "kv_bytes"):
        return cache.kv_bytes()
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is not None and hasattr(t, "numel"):
                total += t.numel() * t.element_size()
        for name in ("_quantized_keys", "_quantized_values"):
            q = getattr(layer, name, None)
            if q is not None:
                total += _quanto_bytes(q)
    return total, 0


def _quanto_bytes(q) -> int:
    """optimum-quanto tensors wrap their packed data, scale and shift; count the plain tensors inside."""
    if type(q).__name__ == "Tensor" or not any(hasattr(q, a) for a in ("_data", "_scale", "_shift")):
        return q.numel() * q.element_size()
    return sum(_quanto_bytes(getattr(q, a)) for a in ("_data", "_scale", "_shift") if getattr(q, a, None) is not None)
