"""One loaded model, several live contexts (sequence ids): interleaved streams equal each stream alone."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backends.decoding import DecisionDecoder, Sampling
from engine.backends.gguf_layout import CHATML
from engine.protocol import normalize
from tests.backends.conftest import PREFIX, make_subject


def _stream_ticks(ctx, dec, seed: int, ticks: int, frames: bool):
    """Lay a chunk out on ``ctx`` and run ``ticks`` decisions; yields (raw, logits after observe) per tick."""
    rng = np.random.default_rng(seed)
    if len(ctx) == 0:
        ctx.append(CHATML.chunk_start(PREFIX.system, PREFIX.text))
    for t in range(ticks):
        px = rng.integers(0, 256, size=(56, 56, 3), dtype=np.uint8) if frames else None
        ctx.append(CHATML.turn(f"<{t}.0 seconds>", ctx.image_marker if px is not None else None, t == 0), px)
        logits = ctx.logits()
        raw = "".join(dec.decide(ctx, 4))
        ctx.queue(dec.commit(ctx, ctx.tokenize(CHATML.decision(normalize(raw).canonical()))))
        yield raw, logits


@pytest.mark.parametrize("name", ["fake-plain", "torch-full", "torch-tailor"])
def test_interleaved_contexts_equal_each_alone(name, request):
    s = make_subject(name, request)
    b = s.backend
    if not hasattr(b, "context"):
        pytest.skip(f"{name} holds one context")
    dec = DecisionDecoder(Sampling(temperature=1.5, top_k=0, top_p=1.0, seed=3), b.decoder.bias)
    alone = {}
    for sid in (1, 2):
        ctx = b.context(seq_id=sid)
        ctx.reset()
        alone[sid] = list(_stream_ticks(ctx, dec, seed=sid, ticks=3, frames=s.frames))
    dec = DecisionDecoder(Sampling(temperature=1.5, top_k=0, top_p=1.0, seed=3), b.decoder.bias)  # fresh rngs
    ctxs = {sid: b.context(seq_id=sid) for sid in (1, 2)}
    gens = {}
    for sid, ctx in ctxs.items():
        ctx.reset()
        gens[sid] = _stream_ticks(ctx, dec, seed=sid, ticks=3, frames=s.frames)
    got = {1: [], 2: []}
    for _ in range(3):  # one tick of stream 1, then one of stream 2, ...
        for sid in (1, 2):
            got[sid].append(next(gens[sid]))
    for sid in (1, 2):
        assert [r for r, _ in got[sid]] == [r for r, _ in alone[sid]]
        worst = max(float(np.max(np.abs(a - c))) for (_, a), (_, c) in zip(got[sid], alone[sid], strict=True))
        assert worst <= 1e-4
    if s.frames:  # not vacuous: the two streams saw different frames
        assert float(np.max(np.abs(got[1][0][1] - got[2][0][1]))) > 1e-4
    b.close()
