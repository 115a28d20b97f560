"""Windows from dataset clips, cut from the SFT episodes' layout (training/episodes.py): each clip is
played once through the real Session into the recording torch backend (``layout_clip``); a window's
prefix is the recorded forwards before its first tick, and each tick's observation is its recorded
forward minus the previous gold decision's tail (which the rollout replaces by its own decision).

The observations do not depend on the decisions inside a window (true of the session's turns: time
marker, query, frame); a later chunk's memory text would, but a window never crosses a chunk.
"""

from __future__ import annotations

import json
import random

from engine.backends.gguf_layout import CHATML
from engine.eval.metrics import PO_TOLERANCE_S
from engine.eval.scenarios import Expected
from engine.session import SessionOptions
from training.dataset import Annotation
from training.episodes import ChunkLayout, layout_clip, windows
from training.rl.rollout import Obs, Window


def expected_of(ann: Annotation) -> list[Expected]:
    """The annotation's items with their answer windows and key words (``presence eval make-suite``
    writes both); an item without a window gets [t, t + 2] (the PO tolerance) and no key words."""
    raw = json.loads(ann.path.read_text(encoding="utf-8")).get("response", [])
    out = []
    for r in raw:
        t = int(float(r["time"]))
        win = tuple(int(x) for x in r.get("window", (t, t + int(PO_TOLERANCE_S))))
        out.append(Expected(r.get("content", ""), t, win, list(r.get("keywords", [])), bool(r.get("delegate", False))))
    return out


def _window(chunk: ChunkLayout, tok, gold: list[str], a: int, b: int, exp: list[Expected], name: str,
            marker: str) -> Window:
    ends, n = {}, 0
    for i, s in enumerate(chunk.segments):
        n += len(s.ids)
        ends[n] = i
    ticks = sorted(t for t in chunk.labels if a <= t <= b)
    order = sorted(chunk.labels)

    def tail_of(t: int) -> list[int]:
        k = order.index(t)
        return tok(CHATML.decision(gold[order[k - 1]].strip()), add_special_tokens=False)["input_ids"] if k else []

    def seg(t: int):
        return chunk.segments[ends[chunk.labels[t][0]]]

    first = ends[chunk.labels[ticks[0]][0]]
    prefix = [Obs(s.ids, s.pixel_values, s.grid) for s in chunk.segments[:first]]
    obs = []
    for t in ticks:
        s, tail = seg(t), tail_of(t)
        if s.ids[:len(tail)] != tail:
            raise RuntimeError(f"{name}: tick {t}: the recorded forward does not begin with the gold tail")
        obs.append(Obs(s.ids[len(tail):], s.pixel_values, s.grid))
    local = [Expected(e.content, e.time - a, (max(e.window[0], a) - a, min(e.window[1], b) - a), e.keywords,
                      e.delegate) for e in exp if a <= e.time <= b]
    hint = "; ".join(f"at {e.time} s: {e.content}" for e in exp if a <= e.time <= b)
    return Window(f"{name}@{a}-{b}", prefix, tail_of(ticks[0]), obs, local, a, f"{marker} {hint}" if hint else "")


def clip_windows(model, processor, anns: list[Annotation], rng: random.Random, window: tuple[int, int] = (20, 60),
                 mode: str = "prompt", marker: str = "Reference answers:") -> list[Window]:
    """Answer-centred windows (``episodes.windows``) of every clip, laid out as the live context holds them."""
    out = []
    for ann in anns:
        gold = ann.decisions()
        exp = expected_of(ann)
        for chunk in layout_clip(model, processor, ann, SessionOptions(mode=mode)):
            ticks = sorted(chunk.labels)
            for a, b in windows(ticks, gold, rng, *window):
                out.append(_window(chunk, processor.tokenizer, gold, a, b, exp, ann.name, marker))
    return out
