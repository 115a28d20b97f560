"""Lazy, memory-mapped access to a transformers checkpoint's safetensors (single file or sharded), so
exact rebuilds and bucket builds read weights from disk instead of keeping both models in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from engine.dami.interp import PairError


class SafetensorsDict(Mapping):
    """name → tensor, read on access from ``model.safetensors`` or its sharded index."""

    def __init__(self, model_dir: str | Path):
        from safetensors import safe_open

        d = Path(model_dir)
        index = d / "model.safetensors.index.json"
        if index.exists():
            shards = json.loads(index.read_text())["weight_map"]
        elif (d / "model.safetensors").exists():
            shards = None
        else:
            raise PairError(f"{d}: no model.safetensors (a transformers checkpoint directory is needed)")
        files = sorted(set(shards.values())) if shards else ["model.safetensors"]
        self._handles = {f: safe_open(str(d / f), framework="pt") for f in files}
        self._where = shards or {k: "model.safetensors" for k in self._handles["model.safetensors"].keys()}

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._handles[self._where[key]].get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def meta(self, key: str) -> tuple[tuple[int, ...], str]:
        s = self._handles[self._where[key]].get_slice(key)
        return tuple(s.get_shape()), str(s.get_dtype())
