"""Every local backend follows the one decision rule (engine/backends/decoding.py).

The same scripted model outputs (``Scripter``: planted logits on the backend's own live context, whose
cache, positions and rollback stay real) give the same raw text, the same normalised decision, and leave
the context holding exactly the committed text. A new backend is done when it passes this file.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.backends.gguf_layout import CHATML
from engine.context import ChunkPrefix
from engine.protocol import normalize
from tests.backends.conftest import PREFIX
from tests.backends.scripted import PEAK, Scripter

# (id, what the model writes, what decide() must yield: the decision's line)
SCRIPTS = [
    ("silence", "</silence><|im_end|>", "</silence>"),
    ("response", "</response> hi there\nthe slide", "</response> hi there"),
    ("delegate", "</response> look </delegation> the slide?\n", "</response> look </delegation> the slide?"),
    ("blank-lines-first", "\n\n</silence>\nzq", "</silence>"),
    ("think-spans-lines", "<think>\nlook\n</think>\n</silence>\nzq", "<think>\nlook\n</think>\n</silence>"),
    ("empty", "<|im_end|>", ""),
    ("garbage", "zq!! 12 ?<|im_end|>", "zq!! 12 ?"),
]


def tick(s, text: str | list[tuple[str, float]], max_tokens: int = 40, t: int = 0) -> tuple[str, int]:
    """observe + decide with ``text`` planted (or [(text, weight)] branches); (raw, context length before)."""
    s.backend.observe(s.turn(t))
    mark = len(s.tokens())
    branches = [(text, PEAK)] if isinstance(text, str) else text
    sc = Scripter(s.ctx, [(s.ctx.tokenize(x), w) for x, w in branches], s.vocab)
    try:
        raw = "".join(s.backend.decide(max_tokens))
    finally:
        sc.remove()
    return raw, mark


def committed(s, mark: int) -> list[int]:
    return s.tokens()[mark:]


@pytest.mark.parametrize("script", SCRIPTS, ids=[x[0] for x in SCRIPTS])
def test_scripted_output_gives_the_decision_line_and_rollback_leaves_exactly_the_commit(subject, script):
    _, text, want = script
    s = subject
    assert s.ctx.is_stop(s.ctx.tokenize("<|im_end|>")[-1])  # the scripts end turns with it
    s.backend.start_chunk(PREFIX)
    raw, mark = tick(s, text)
    assert raw == want
    d = normalize(raw)
    s.backend.commit(d.canonical())
    assert committed(s, mark) == s.ctx.tokenize(CHATML.decision(d.canonical()))
    # the next tick runs on the rolled-back context
    raw2, _ = tick(s, "</silence><|im_end|>", t=1)
    assert raw2 == "</silence>"


def test_the_same_script_gives_the_same_decisions_everywhere(subject):
    got = []
    s = subject
    s.backend.start_chunk(PREFIX)
    for t, (_, text, _) in enumerate(SCRIPTS):
        raw, _ = tick(s, text, t=t)
        d = normalize(raw)
        s.backend.commit(d.canonical())
        got.append((d.action, d.text, d.delegate_query))
    assert got == [("silence", "", ""), ("response", "hi there", ""), ("delegate", "look", "the slide?"),
                   ("silence", "", ""), ("silence", "", ""), ("silence", "", ""), (normalize("zq!! 12 ?").action,
                                                                                   normalize("zq!! 12 ?").text, "")]


def test_max_tokens_cuts_the_decision_and_the_last_token_is_never_evaluated(subject):
    s = subject
    s.backend.start_chunk(PREFIX)
    text = "</response> the slide changed the slide changed"
    raw, mark = tick(s, text, max_tokens=3)
    ids = s.ctx.tokenize(text)
    assert raw == s.ctx.detokenize(ids[:3])
    assert committed(s, mark) == ids[:2]  # two fed; the third was sampled, shown, never evaluated
    s.backend.commit("</response> the slide changed")
    assert committed(s, mark) == s.ctx.tokenize(CHATML.decision("</response> the slide changed"))
    raw, mark = tick(s, text, max_tokens=0, t=1)
    assert raw == "" and committed(s, mark) == []


def _with_bias(s, bias: float):
    dec = s.backend.decoder
    dec.bias = dataclasses.replace(dec.bias, bias=bias)
    dec.sampling.greedy = True  # the weights below are close: no sampling noise


def _fork(s):
    return s.backend.decoder.bias.fork, s.ctx.tokenize("</silence>"), s.ctx.tokenize("</response>")


def test_positive_silence_bias_starts_takes_and_finishes_the_marker(subject):
    s = subject
    fork, sil, resp = _fork(s)
    old = (s.backend.decoder.bias, s.backend.decoder.sampling.greedy)
    detour = s.ctx.detokenize(sil[:fork + 1]) + "zq"  # leaves the silence path right after the fork
    branches = [("</response> hi", 10.0), ("</silence>", 6.0), (detour, 8.0)]
    try:
        _with_bias(s, 0.0)
        s.backend.start_chunk(PREFIX)
        assert tick(s, branches)[0].startswith("</response>")  # control: without the bias, response
        _with_bias(s, 5.0)
        s.backend.start_chunk(PREFIX)
        raw, _ = tick(s, branches)
        assert raw.startswith("</silence>")  # 6 + 5 > 10 at the fork, then 6 + 5 > 8 on the path
        s.backend.start_chunk(PREFIX)  # a model about to write no marker at all starts the silence marker
        assert tick(s, [("hi there", 8.0), ("</silence>", 6.0)])[0].startswith("</silence>")
    finally:
        s.backend.decoder.bias, s.backend.decoder.sampling.greedy = old


def test_negative_silence_bias_acts_at_the_fork_only(subject):
    s = subject
    fork, sil, resp = _fork(s)
    old = (s.backend.decoder.bias, s.backend.decoder.sampling.greedy)
    try:
        _with_bias(s, -5.0)
        s.backend.start_chunk(PREFIX)
        raw, _ = tick(s, [("</silence>", 10.0), ("</response> hi", 6.0)])
        assert raw.startswith("</response>")  # 10 - 5 < 6
        if len(sil) > fork + 1:  # markers as plain text: a later silence token is not pushed down
            detour = s.ctx.detokenize(sil[:fork + 1]) + "zq"
            s.backend.start_chunk(PREFIX)
            raw, _ = tick(s, [("</silence>", 20.0), (detour, 19.0)])
            assert raw.startswith("</silence>")
    finally:
        s.backend.decoder.bias, s.backend.decoder.sampling.greedy = old


def test_chunk_reset_leaves_nothing_of_the_old_chunk(subject):
    s = subject
    other = ChunkPrefix(system=PREFIX.system, text="[Video History]\nA summary of the first chunk.")
    s.backend.start_chunk(other)
    fresh_tokens, fresh_logits = s.tokens(), s.ctx.logits()
    s.backend.start_chunk(PREFIX)
    for t in range(3):
        raw, _ = tick(s, "</response> hi there\n", t=t)
        s.backend.commit(normalize(raw).canonical())
    tick(s, "</response> the slide", t=3)  # an open decision, never committed
    s.backend.start_chunk(other)
    assert s.tokens() == fresh_tokens
    assert float(np.max(np.abs(s.ctx.logits() - fresh_logits))) <= 1e-2
