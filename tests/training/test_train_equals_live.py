"""Training sees exactly what the model sees live: ids and M-RoPE positions, token for token.

The live side is the real torch backend on a real tiny model, ticking through a clip in the real
session, generating each decision (greedy) and then committing the gold one (so the rollback to the
common prefix runs). Its positions are read from its own ``RopeTracker`` as it computes them.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_loading import load_model  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.clock import VirtualClock  # noqa: E402
from engine.context import HINT_HEADER, HintOptions  # noqa: E402
from engine.eval.clipsource import ClipSource  # noqa: E402
from engine.eval.hints import with_hints  # noqa: E402
from engine.session import Session, SessionOptions  # noqa: E402
from training.dataset import read_dataset  # noqa: E402
from training.episodes import layout_clip  # noqa: E402


class ForcedLive(TorchBackend):
    """The live backend, unchanged, except that the session's commit is replaced by the gold decision,
    and every position its context computes is logged (rollbacks and chunk resets included)."""

    def __init__(self, gold):
        super().__init__()
        self.gold, self.t, self.pos = gold, -1, []

    def attach(self, *a, **kw):
        super().attach(*a, **kw)
        rope = self.ctx.rope
        positions, crop, reset = rope.positions, rope.crop, rope.reset

        def logged_positions(ids, grid):
            p = positions(ids, grid)
            self.pos.append(p[:, 0, :].clone())
            return p

        def logged_crop(n):
            crop(n)
            if n > 0:
                self.pos[:] = [torch.cat(self.pos, dim=1)[:, :-n]]

        def logged_reset():
            reset()
            self.pos.clear()

        rope.positions, rope.crop, rope.reset = logged_positions, logged_crop, logged_reset

    def observe(self, turn):
        self.t = turn.t
        super().observe(turn)

    def commit(self, text):
        super().commit(self.gold[self.t])


def _live(model_dir, ann, hints: bool = False):
    loaded = load_model(str(model_dir), "cpu", "float32")
    b = ForcedLive(ann.decisions())
    b.attach(loaded.model, loaded.processor, BackendConfig(model=str(model_dir), greedy=True), "cpu")
    opts = SessionOptions(duration_s=float(ann.duration), max_tokens=4)  # short lines: cheap, still rolled back
    s = Session(with_hints(b, HintOptions(perception_hints=hints)), ClipSource(ann.video), clock=VirtualClock(),
                options=opts)
    for q in ann.questions:
        s.submit_query(q.content, at=float(q.t))
    assert s.run().error is None
    return b


@pytest.mark.parametrize(("family", "hints"), [("tiny25", False), ("tiny3", False), ("tiny25", True)])
def test_training_layout_equals_live_context(family, hints, request, small_suite):
    model_dir = request.getfixturevalue(family)
    anns, _ = read_dataset(small_suite)
    ann = next(a for a in anns if a.responses and any(r.delegate for r in a.responses))
    ann.duration = 14  # a query, a delegated answer (at 5–10 s) and silences keep the test short
    ann.responses = [r for r in ann.responses if r.t < 14]
    assert ann.responses, "the clip must carry a decision to commit"
    if hints:
        pytest.importorskip("rapidocr", reason="perception hints read the frame's text with rapidocr")
    live = _live(model_dir, ann, hints)
    loaded = load_model(str(model_dir), "cpu", "float32")
    (chunk,) = layout_clip(loaded.model, loaded.processor, ann, hints=HintOptions(perception_hints=hints))
    train_ids = [i for s in chunk.segments for i in s.ids]
    train_pos = torch.cat([s.positions for s in chunk.segments], dim=1)  # [3, L]
    live_ids = live.context_ids()
    assert train_ids == live_ids
    text = loaded.processor.tokenizer.decode(train_ids)
    assert (HINT_HEADER in text) == hints  # the hint lines are in both, token for token, or in neither
    if hints:
        assert "text: Working notes" in text  # the delegation clip's note, read by OCR
    held = len(live.ids)  # the live cache holds all but the last decision (queued for the next turn)
    assert held < len(live_ids)  # and it did generate and roll back: the test covers the commit path
    live_pos = torch.cat(live.pos, dim=1)
    assert live_pos.shape[1] == held
    assert torch.equal(train_pos[:, :held], live_pos)
    # the decisions the labels point at are the gold texts, in the live token stream
    tok = loaded.processor.tokenizer
    for t, (a, b) in chunk.labels.items():
        text = tok.decode(live_ids[a:b])
        assert text == ann.decisions()[t] + "<|im_end|>"
