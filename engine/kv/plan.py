"""The layer plan: which layers are quantized (need global context) and which are sparse.

JSON stored beside the model (``<model dir>/presence_kv_plan.json``, or ``<file stem>.kvplan.json``
beside a single-file model)::

    {"version": 1, "model": "...", "num_layers": 30, "threshold": 0.2, "top_frac": 0.05, "last_q": 32,
     "scores": [0.41, 0.12, ...], "quantized_layers": [0], "sparse_layers": [1, 2, ...]}

A layer's score is the TailorKV dense-preference score: the mean attention mass that falls outside
each query's top ``top_frac`` of keys, over the last ``last_q`` queries of a calibration input and all
query heads. Score > threshold → quantized (dense attention does not survive top-k), else sparse.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

PLAN_NAME = "presence_kv_plan.json"


@dataclass
class LayerPlan:
    num_layers: int
    quantized_layers: list[int]
    threshold: float = 0.2
    top_frac: float = 0.05
    last_q: int = 32
    scores: list[float] = field(default_factory=list)
    model: str = ""
    version: int = 1

    @property
    def sparse_layers(self) -> list[int]:
        q = set(self.quantized_layers)
        return [i for i in range(self.num_layers) if i not in q]

    @classmethod
    def default(cls, num_layers: int) -> LayerPlan:
        """TailorKV's usual outcome when no plan was profiled: layer 0 quantized, the rest sparse."""
        return cls(num_layers=num_layers, quantized_layers=[0])

    @classmethod
    def from_scores(cls, scores: list[float], threshold: float = 0.2, **kw) -> LayerPlan:
        return cls(num_layers=len(scores), quantized_layers=[i for i, s in enumerate(scores) if s > threshold],
                   threshold=threshold, scores=[round(float(s), 5) for s in scores], **kw)

    def to_json(self) -> str:
        d = asdict(self)
        d["sparse_layers"] = self.sparse_layers
        return json.dumps(d, indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> LayerPlan:
        try:
            d = json.loads(Path(path).read_text())
            return cls(num_layers=int(d["num_layers"]), quantized_layers=[int(i) for i in d["quantized_layers"]],
                       threshold=float(d.get("threshold", 0.2)), top_frac=float(d.get("top_frac", 0.05)),
                       last_q=int(d.get("last_q", 32)), scores=list(d.get("scores", [])),
                       model=str(d.get("model", "")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read KV layer plan {path}: {exc}") from None


def plan_path_for(model: str | Path) -> Path:
    """Where the plan of ``model`` lives: inside a model directory, or beside a single model file."""
    p = Path(model)
    return p / PLAN_NAME if p.is_dir() else p.with_name(p.stem + ".kvplan.json")


def dense_score(query: torch.Tensor, key: torch.Tensor, scaling: float, top_frac: float = 0.05,
                last_q: int = 32) -> float:
    """Mass outside each query's top ``top_frac`` keys, averaged over (query, head).

    query [B, Hq, q, D], key [B, Hkv, T, D]; the last ``last_q`` queries attend causally (bottom-right).
    """
    b, hq, q, d = query.shape
    t = key.shape[-2]
    nq = min(last_q, q)
    k = key.repeat_interleave(hq // key.shape[1], dim=1).float()
    logits = query[:, :, -nq:].float() @ k.transpose(-1, -2) * scaling  # [B, Hq, nq, T]
    qpos = torch.arange(t - nq, t, device=query.device)[:, None]
    logits = logits.masked_fill(torch.arange(t, device=query.device)[None, :] > qpos, float("-inf"))
    probs = logits.softmax(-1)
    top = probs.topk(max(1, math.ceil(top_frac * t)), dim=-1).values.sum(-1)  # [B, Hq, nq]
    return float((1.0 - top).mean())
