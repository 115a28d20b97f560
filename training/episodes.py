"""Episodes laid out exactly as the torch backend lays out its live context.

No layout code lives here. A clip is played through the real :class:`engine.session.Session` (frame
decoding, one-second sampling, resizing, query timing, chunk boundaries) into :class:`LayoutRecorder`:
the real :class:`~engine.backends.torch_vlm.TorchBackend` (its ``CHATML`` layout, chunk prefix, time
markers, commit through ``DecisionDecoder``) on a :class:`RecordingContext`, a ``TorchContext`` whose
only change is that its forward step records the ids, M-RoPE positions (its own ``RopeTracker``)
and pixel tensors instead of running the model. The decision each second is the gold one. So a later
layout change shows up in training (and in the train-equals-live test) instead of silently diverging.

An episode is an answer-centred window of 20–60 ticks plus the earlier history of its chunk as
context (the reference trains on such windows): the sequence runs from the chunk start to the end
of the window's last decision, and only the window's decision tokens (and their ``<|im_end|>``)
carry loss.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from engine.backends.base import Backend, BackendConfig
from engine.backends.torch_context import TorchContext
from engine.backends.torch_vlm import TorchBackend
from engine.clock import VirtualClock
from engine.context import ChunkPrefix, HintOptions, PerceptionHints, Turn
from engine.eval.clipsource import ClipSource
from engine.eval.hints import with_hints
from engine.session import Session, SessionOptions
from training.dataset import Annotation
from training.loss import IGNORE
from training.weights import WeightConfig, tick_weights


@dataclass
class Segment:
    """One forward step of the live context: ids [L], positions [3, L], and its image (or None)."""

    ids: list[int]
    positions: torch.Tensor
    pixel_values: torch.Tensor | None = None
    grid: torch.Tensor | None = None
    image_at: int | None = None  # index of the segment's first image token


@dataclass
class ChunkLayout:
    """A whole chunk as the live cache would hold it, with where each second's decision sits."""

    segments: list[Segment] = field(default_factory=list)
    labels: dict[int, tuple[int, int]] = field(default_factory=dict)  # tick → [start, end) token span

    @property
    def length(self) -> int:
        return sum(len(s.ids) for s in self.segments)


class RecordingContext(TorchContext):
    """The torch live context with its model call replaced by a recorder."""

    chunks: list[ChunkLayout]

    def reset(self) -> None:
        super().reset()
        self.chunks.append(ChunkLayout())

    def _forward(self, ids: list[int], pixel_values=None, grid=None, extra=None) -> None:
        t_ids = torch.tensor([ids], dtype=torch.long)  # [1, L]
        pos = self.rope.positions(t_ids, grid)  # [3, 1, L]
        at = ids.index(self.image_token_id) if pixel_values is not None else None
        self.chunks[-1].segments.append(Segment(list(ids), pos[:, 0, :].clone(), pixel_values, grid, at))
        self.ids.extend(ids)
        self._logits = torch.zeros(1)  # only "a forward happened" is ever asked of it

    def flush(self) -> None:
        """Evaluate the last decision's queued tokens (the next turn would have)."""
        if self.chunks and self.pending:
            self._forward(self.pending)
            self.pending = []


class LayoutRecorder(TorchBackend):
    """The torch backend on a recording context, committing the gold decision every second."""

    name = "torch-layout"

    def __init__(self, decisions: list[str]):
        super().__init__()
        self.gold = decisions
        self.chunks: list[ChunkLayout] = []
        self._t = -1

    def context(self, seq_id: int) -> TorchContext:
        ctx = super().context(seq_id)
        ctx.__class__ = RecordingContext  # the backend's own context, built by its own code; only _forward differs
        ctx.chunks = self.chunks
        return ctx

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        if self.ctx is not None and self.chunks:
            self.ctx.flush()  # the live cache drops the last decision's tail at a boundary; training keeps it
        super().start_chunk(prefix)

    def observe(self, turn: Turn) -> None:
        self._t = turn.t
        super().observe(turn)

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield self.gold[self._t]

    def commit(self, text: str) -> None:
        # The gold decision is committed whatever the session's talk settings made of it: the labels
        # are what the model should have written.
        gold = self.gold[self._t]
        start = len(self.ctx.context_ids())
        super().commit(gold)
        n = len(self.ctx.tokenize(gold.strip())) + 1  # the decision and its <|im_end|>; not the "\n"
        self.chunks[-1].labels[self._t] = (start, start + n)


SHARED_OCR_FRAMES = 4096  # distinct frames whose hint text the process keeps (a short string each)
_shared_hints: dict[tuple, PerceptionHints] = {}


def hinted(backend: Backend, hints: HintOptions | None) -> Backend:
    """``with_hints`` with one OCR cache for the whole process. A hint's text is a pure function of the
    frame's pixels (``PerceptionHints``), and a dataset's clips show the same screens again and again (8
    monitoring clips: 4 distinct frames, 25 per clip summed), as does a second run over the same clips;
    OCR was 80 % of a clip's layout with a cache per clip."""
    wrapped = with_hints(backend, hints)
    if wrapped is not backend:
        key = tuple(sorted(vars(hints).items()))
        wrapped.hints = _shared_hints.setdefault(key, PerceptionHints(hints, cache=SHARED_OCR_FRAMES))
    return wrapped


def layout_clip(model, processor, ann: Annotation, options: SessionOptions | None = None,
                hints: HintOptions | None = None) -> list[ChunkLayout]:
    """Play ``ann``'s clip through the session into the recorder; one layout per chunk. With
    ``hints.perception_hints`` the turns carry perception hints, through the same wrapper a live
    session or the eval runner uses."""
    rec = LayoutRecorder(ann.decisions())
    cfg = BackendConfig(model="layout")
    cfg.kv.fast_attention = False  # attach() sets the model's attention: stock SDPA, which training runs
    rec.attach(model, processor, cfg)
    opts = options or SessionOptions()
    opts.duration_s = float(ann.duration)
    opts.source_label = str(ann.video)
    backend = hinted(rec, hints)
    session = Session(backend, ClipSource(ann.video), clock=VirtualClock(), options=opts)
    for q in ann.questions:
        session.submit_query(q.content, source="dataset", at=float(q.t))
    result = session.run()
    if result.error:
        raise RuntimeError(f"{ann.path}: {result.error}")
    rec.ctx.flush()
    return rec.chunks


@dataclass
class Episode:
    """One training sequence. input_ids [L], position_ids [3, L], labels [L], weights [L]."""

    name: str
    input_ids: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    ticks: tuple[int, int]  # the window [first, last] carrying loss
    vision: object = field(default=None, repr=False)  # the frozen vision tower's output, computed once


def _cut(chunk: ChunkLayout, end: int) -> tuple[list[int], torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    ids, pos, pvs, grids, n = [], [], [], [], 0
    for s in chunk.segments:
        if n >= end:
            break
        k = min(len(s.ids), end - n)
        ids.extend(s.ids[:k])
        pos.append(s.positions[:, :k])
        if s.pixel_values is not None and s.image_at < k:  # the cut is after the decision, before its image
            pvs.append(s.pixel_values)
            grids.append(s.grid)
        n += k
    return ids, torch.cat(pos, dim=1), pvs, grids


def windows(ticks: list[int], decisions: list[str], rng: random.Random,
            min_len: int = 20, max_len: int = 60) -> list[tuple[int, int]]:
    """Answer-centred windows [first, last] over the chunk's ticks: one per response not already
    covered, each 20–60 ticks around it; a chunk with no response gets one window at random."""
    if not ticks:
        return []
    lo, hi = ticks[0], ticks[-1]
    out: list[tuple[int, int]] = []
    answers = [t for t in ticks if decisions[t].strip() != "</silence>"]
    for t in answers:
        if any(a <= t <= b for a, b in out):
            continue
        n = rng.randint(min_len, max_len)
        before = rng.randint(n // 4, 3 * n // 4)
        a = max(lo, t - before)
        b = min(hi, a + n - 1)
        out.append((max(lo, b - n + 1), b))
    if not answers:
        n = min(rng.randint(min_len, max_len), hi - lo + 1)
        a = rng.randint(lo, hi - n + 1)
        out.append((a, a + n - 1))
    return out


def episodes(chunks: list[ChunkLayout], ann: Annotation, rng: random.Random,
             weight_cfg: WeightConfig | None = None, min_len: int = 20, max_len: int = 60,
             image_token_id: int | None = None) -> list[Episode]:
    """Cut each chunk into answer-centred episodes with per-token labels and weights. With a
    ``weight_cfg.context`` above 0, the stream's own tokens inside the window (from the end of the decision
    before it) are trained too at that weight, image tokens (``image_token_id``) excepted."""
    weight_cfg = weight_cfg or WeightConfig()
    decisions = ann.decisions()
    tw = tick_weights(decisions, weight_cfg, ann.weights)
    out = []
    for chunk in chunks:
        ticks = sorted(chunk.labels)
        for a, b in windows(ticks, decisions, rng, min_len, max_len):
            end = chunk.labels[b][1]
            ids, pos, pvs, grids = _cut(chunk, end)
            labels = torch.full((len(ids),), IGNORE, dtype=torch.long)
            weights = torch.zeros(len(ids))
            ids_t = torch.tensor(ids, dtype=torch.long)
            if weight_cfg.context > 0:
                before = [t for t in ticks if t < a]
                start = chunk.labels[before[-1]][1] if before else 0
                stream = ids_t[start:] != (image_token_id if image_token_id is not None else -1)
                labels[start:][stream] = ids_t[start:][stream]
                weights[start:][stream] = weight_cfg.context
            for t in range(a, b + 1):
                if t in chunk.labels:
                    s, e = chunk.labels[t]
                    labels[s:e] = ids_t[s:e]
                    weights[s:e] = tw[t]
            out.append(Episode(ann.name, ids_t, pos, labels, weights,
                               torch.cat(pvs) if pvs else None, torch.cat(grids) if grids else None, (a, b)))
    return out
