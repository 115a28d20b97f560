"""Serving θ(λ) cheaply: in-place delta swaps on one resident model, and an LRU cache of buckets.

* :class:`InPlaceSwapper` keeps D = W_T − W_I next to the resident weights and moves between λ values
  with ``W += (λ'−λ)·D`` (one pass over the weights). Float rounding accumulates with every swap, so
  every ``rebuild_every`` swaps, and on every move to λ = 0 or 1, the weights are rebuilt exactly from
  the two checkpoints (``source``), which is why the ends are byte-identical to the inputs.
* :class:`BucketCache` materialises θ(λ) per bucket and keeps the K most recently used ones resident.
* :class:`KVByLambda`: keys and values depend on the weights, so every cached prefix is keyed by λ.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from engine.dami.interp import check_mask, check_pair, interpolate, module_of


class InPlaceSwapper:
    """Moves a resident model's weights between λ values in place.

    ``source()`` returns the (instruct, thinking) state dicts used for exact rebuilds and for the delta;
    they may be memory-mapped safetensors, so only D and the resident weights need to stay in memory.
    """

    def __init__(self, model: torch.nn.Module, source: Callable[[], tuple[Mapping[str, torch.Tensor],
                 Mapping[str, torch.Tensor]]], lam: float = 0.0, mask: Iterable[str] | None = None,
                 rebuild_every: int = 8):
        self.model = model
        self.source = source
        self.mask = check_mask(mask)
        self.rebuild_every = max(1, int(rebuild_every))
        self.params = {n: p for n, p in model.named_parameters()}  # tied weights appear once
        sd_i, sd_t = source()
        check_pair(sd_i, sd_t)
        missing = sorted(set(self.params) - set(sd_i))
        if missing:
            from engine.dami.interp import PairError

            raise PairError(f"the resident model has {missing[0]}, which the checkpoints lack")
        dev = next(model.parameters()).device
        self.delta = {n: (sd_t[n].to(dev, p.dtype) - sd_i[n].to(dev, p.dtype)) for n, p in self.params.items()
                      if self._moves(n)}
        self.lam = None
        self.swaps = 0  # delta swaps since the last exact rebuild
        self.rebuilds = 0
        self.set(lam)

    def _moves(self, name: str) -> bool:
        return self.mask is None or module_of(name) in self.mask

    @torch.no_grad()
    def rebuild(self, lam: float) -> None:
        """W = interpolate(W_I, W_T, λ) exactly (non-moving tensors: W_I)."""
        sd_i, sd_t = self.source()
        for n, p in self.params.items():
            w = interpolate(sd_i[n], sd_t[n], lam) if self._moves(n) else sd_i[n]
            p.copy_(w.to(p.device, p.dtype))
        self.lam, self.swaps = float(lam), 0
        self.rebuilds += 1

    @torch.no_grad()
    def set(self, lam: float) -> str:
        """Switch to λ; returns what it did: "none", "swap" or "rebuild"."""
        lam = float(lam)
        if self.lam is not None and lam == self.lam:
            return "none"
        if self.lam is None or lam in (0.0, 1.0) or self.swaps + 1 >= self.rebuild_every:
            self.rebuild(lam)
            return "rebuild"
        step = lam - self.lam
        for n, d in self.delta.items():
            self.params[n].add_(d, alpha=step)
        self.lam = lam
        self.swaps += 1
        return "swap"

    def delta_bytes(self) -> int:
        return sum(d.numel() * d.element_size() for d in self.delta.values())


class BucketCache:
    """An LRU of K materialised θ(λ_b) (or anything ``build(λ)`` returns: a torch model, a llama.cpp
    handle). ``close(value)`` is called on eviction."""

    def __init__(self, build: Callable[[float], Any], capacity: int = 2, close: Callable[[Any], None] | None = None):
        if capacity < 1:
            raise ValueError("bucket cache capacity must be at least 1")
        self.build = build
        self.capacity = int(capacity)
        self.close = close
        self._items: OrderedDict[float, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, lam: float) -> Any:
        lam = float(lam)
        if lam in self._items:
            self._items.move_to_end(lam)
            self.hits += 1
            return self._items[lam]
        self.misses += 1
        while len(self._items) >= self.capacity:
            _, old = self._items.popitem(last=False)
            if self.close is not None:
                self.close(old)
        value = self.build(lam)
        self._items[lam] = value
        return value

    def resident(self) -> list[float]:
        return list(self._items)


class KVByLambda:
    """Cached prefix KV states keyed by (λ, prefix). A λ never reuses another λ's keys and values."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._items: OrderedDict[tuple[float, str], Any] = OrderedDict()

    def get(self, lam: float, prefix: str) -> Any | None:
        key = (float(lam), prefix)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, lam: float, prefix: str, value: Any) -> None:
        self._items[(float(lam), prefix)] = value
        self._items.move_to_end((float(lam), prefix))
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop_other_lambdas(self, lam: float) -> None:
        """After an in-place swap the old λ's weights are gone from memory; their KV stays valid only if
        we come back exactly, which drift does not guarantee, so drop it."""
        for k in [k for k in self._items if k[0] != float(lam)]:
            del self._items[k]

    def keys(self) -> list[tuple[float, str]]:
        return list(self._items)
