"""The torch backend on tiny random Qwen2.5-VL and Qwen3-VL checkpoints (real transformers, offline).

The key test: after incremental ticks on the live cache (images of different sizes, a query
mid-way, a rollback by commit) the next-token logits equal those of ONE full forward over the same
token sequence, where transformers computes the multimodal positions itself (the naive path).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.backends.base import BackendConfig, BackendError, ModelLoadError  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.kv import KVOptions  # noqa: E402
from engine.prompts import system_prompt  # noqa: E402
from tests.tiny_models import build_tiny_qwen3vl, build_tiny_qwen25vl  # noqa: E402

BUILDERS = {"qwen25vl": build_tiny_qwen25vl, "qwen3vl": build_tiny_qwen3vl}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core box: one thread avoids OpenMP spin-waits (8x faster here)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny-vlm")
    return {name: build(base / name) for name, build in BUILDERS.items()}


def _backend(path, **kw) -> TorchBackend:
    kw.setdefault("seed", 0)
    cfg = BackendConfig(model=str(path), device="cpu", dtype="float32", options={"record_images": True}, **kw)
    b = TorchBackend()
    b.load(cfg)
    return b


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _prefix(text: str = "") -> ChunkPrefix:
    return ChunkPrefix(system=system_prompt("native", True), text=text)


def _full_forward_logits(b: TorchBackend):
    """The naive path: one forward over the whole token sequence, positions computed by transformers."""
    ids = torch.tensor([b.context_ids()], dtype=torch.long)  # [1, T]
    kw = dict(input_ids=ids, mm_token_type_ids=(ids == b.image_token_id).int())
    if b.images:
        kw["pixel_values"] = torch.cat([pv for pv, _ in b.images])
        kw["image_grid_thw"] = torch.cat([g for _, g in b.images])
    from engine.kv import attention

    impl = attention.text_impl(b.model)
    if impl == attention.ATTN_IMPLEMENTATION:  # the reference runs on stock SDPA, not the code under test
        attention.use(b.model, "sdpa")
    try:
        with torch.inference_mode():
            out = b.model(**kw)
    finally:
        attention.use(b.model, impl)
    return out.logits[0, -1].float()


# Frames of different sizes (different image-token grids, non-square included), a query at tick 3.
TICKS = [(0, (64, 64), None), (1, (96, 64), None), (2, (64, 128), None), (3, (128, 96), "what changed?"),
         (4, (64, 64), None), (5, None, None), (6, (100, 70), None)]


@pytest.mark.parametrize("name,growable", [("qwen25vl", True), ("qwen3vl", True), ("qwen25vl", False)])
def test_incremental_ticks_match_one_full_forward(tiny_dirs, name, growable):
    b = _backend(tiny_dirs[name], greedy=False, temperature=1.0, kv=KVOptions(growable=growable))
    assert (type(b.cache).__name__ if b.cache else "") == ""  # made per chunk
    b.start_chunk(_prefix())
    assert (type(b.cache).__name__ == "DynamicCache") == (not growable)
    b.start_chunk(_prefix("[Video History]\nA slide deck."))
    worst = 0.0
    for t, size, query in TICKS:
        pixels = _frame(*size, seed=t) if size else None
        b.observe(Turn(t=t, pixels=pixels, query=query))
        # after every observe the incremental logits equal the naive path's
        worst = max(worst, float((b.next_logits() - _full_forward_logits(b)).abs().max()))
        raw = "".join(b.decide(max_tokens=6))
        # tick 2 rolls back: the committed text differs from what was generated, so commit crops
        b.commit("</response> the slide changed" if t == 2 else ("</silence>" if t % 2 else raw or "</silence>"))
    b.observe(Turn(t=7, pixels=_frame(64, 96, seed=7)))
    worst = max(worst, float((b.next_logits() - _full_forward_logits(b)).abs().max()))
    assert len(b.images) == 7
    print(f"{name}: incremental vs full forward max |Δ| = {worst:.2e}")
    assert worst <= 1e-4, f"incremental vs full forward: max |Δ| = {worst:.2e}"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_tailor_cache_plugs_in_and_stays_exact(tiny_dirs, name):
    """engine.kv's TailorKV cache through the public Cache API; with exact settings it matches the full forward."""
    pytest.importorskip("engine.kv")
    b = _backend(tiny_dirs[name], kv_cache="tailor", kv=KVOptions(bits=16, top_k=10_000))
    b.start_chunk(_prefix())
    worst = 0.0
    for t, size, query in TICKS[:4]:
        b.observe(Turn(t=t, pixels=_frame(*size, seed=t), query=query))
        worst = max(worst, float((b.next_logits() - _full_forward_logits(b)).abs().max()))
        list(b.decide(max_tokens=4))
        b.commit("</response> the slide changed" if t == 2 else "</silence>")
    assert type(b.cache).__name__ != "DynamicCache"
    assert b.stats().kv_bytes_fast > 0
    assert worst <= 1e-4, f"tailor cache vs full forward: max |Δ| = {worst:.2e}"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_plain_forward_on_cache_would_drift(tiny_dirs, name):
    """Why the backend computes positions itself: transformers' own incremental path is off (or refuses)."""
    b = _backend(tiny_dirs[name])
    b.start_chunk(_prefix())
    b.observe(Turn(t=0, pixels=_frame(64, 64, 0)))
    b.commit("</silence>")
    before = len(b.ids)
    text = "<|im_start|>user\n<1.0 seconds><|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    enc = b.processor(text=[text], images=[_frame(96, 64, 1)], return_tensors="pt")
    ids = torch.tensor([b.ctx.pending + enc["input_ids"][0].tolist()])
    b.images.append((enc["pixel_values"], enc["image_grid_thw"]))
    b.ctx.pending = []
    kw = dict(input_ids=ids, pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"],
              cache=b.cache, use_cache=True)
    if name == "qwen3vl":  # refuses outright without mm_token_type_ids
        with pytest.raises(Exception, match="mm_token_type_ids|NoneType|iterator"):
            with torch.inference_mode():
                b.model(**kw)
        return
    with torch.inference_mode():  # no position_ids: the model infers them itself
        out = b.model(**kw)
    b.ids.extend(ids[0].tolist())
    assert len(b.ids) > before
    drift = float((out.logits[0, -1].float() - _full_forward_logits(b)).abs().max())
    print(f"{name}: plain forward on the cache drifts by max |Δ| = {drift:.2e}")
    assert drift > 1e-4


def test_processor_builds_without_torchvision(tiny_dirs):
    import importlib.util

    b = _backend(tiny_dirs["qwen3vl"])
    if importlib.util.find_spec("torchvision") is None:
        assert type(b.processor).__name__.startswith("NoVideo")  # the deps_probe §1 fallback
    enc = b.processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[_frame(64, 64, 0)],
                      return_tensors="pt")
    assert int((enc["input_ids"] == b.image_token_id).sum()) == int(enc["image_grid_thw"].prod()) // 4


def test_commit_rolls_back_to_exact_normalised_text(tiny_dirs):
    b = _backend(tiny_dirs["qwen25vl"], greedy=True)
    b.start_chunk(_prefix())
    b.observe(Turn(t=0, pixels=_frame(64, 64, 0)))
    n0 = len(b.context_ids())
    list(b.decide(max_tokens=8))
    b.commit("</response> hello there")
    want = b.ctx.tokenize("</response> hello there") + b.ctx.tokenize("<|im_end|>\n")
    assert b.context_ids()[n0:] == want
    assert b.cache.get_seq_length() == len(b.ids)
    assert len(b.ctx.rope.next_at) == len(b.ids) + 1  # positions rolled back with the cache


def test_max_tokens_cuts_the_decision(tiny_dirs):
    b = _backend(tiny_dirs["qwen3vl"], temperature=5.0, top_k=0, top_p=1.0)  # very noisy sampling
    b.start_chunk(_prefix())
    b.observe(Turn(t=0, pixels=_frame(64, 64, 0)))
    n0 = len(b.ids)
    list(b.decide(max_tokens=3))
    assert len(b.ids) - n0 <= 2  # the last sampled token is never fed
    b.commit("</silence>")
    b.observe(Turn(t=1, pixels=_frame(64, 64, 1)))
    list(b.decide(max_tokens=0))  # zero tokens: nothing generated, nothing fed
    b.commit("</silence>")


def test_garbage_output_is_normalised_never_a_crash(tiny_dirs):
    from engine.protocol import normalize

    b = _backend(tiny_dirs["qwen3vl"], temperature=3.0, top_k=0, top_p=1.0, seed=3)
    b.start_chunk(_prefix())
    for t in range(3):
        b.observe(Turn(t=t, pixels=_frame(64, 64, t)))
        raw = "".join(b.decide(max_tokens=12))
        d = normalize(raw, "")
        assert d.action in ("silence", "response", "delegate")
        b.commit(d.canonical())
        close = b.ctx.tokenize("<|im_end|>\n")
        assert b.context_ids()[-len(close):] == close


def test_chunk_rebuild_resets_the_cache(tiny_dirs):
    b = _backend(tiny_dirs["qwen25vl"], greedy=True)
    b.start_chunk(_prefix())
    first = list(b.ids)
    for t in range(3):
        b.observe(Turn(t=t, pixels=_frame(64, 64, t)))
        list(b.decide(4))
        b.commit("</silence>")
    assert len(b.context_ids()) > len(first)
    b.start_chunk(_prefix("[Video History]\nsummary"))
    assert b.cache.get_seq_length() == len(b.ids) and b.ctx.pending == []
    assert b.ids[: len(first) - 2] == first[: len(first) - 2]  # same system prompt, new memory prefix
    s = b.stats()
    assert s.tokens_context == len(b.ids) and s.kv_bytes_fast > 0


def test_context_full_is_a_backend_error_and_loses_nothing(tiny_dirs):
    b = _backend(tiny_dirs["qwen25vl"], greedy=True)
    b.start_chunk(_prefix())
    b.ctx.n_ctx = len(b.ids) + 10
    before = (list(b.ids), b.cache.get_seq_length())
    with pytest.raises(BackendError, match="context full"):
        b.observe(Turn(t=0, pixels=_frame(64, 64, 0)))
    assert (b.ids, b.cache.get_seq_length()) == before


def test_stats_and_errors(tiny_dirs, monkeypatch):
    b = TorchBackend()
    with pytest.raises(BackendError):
        b.observe(Turn(t=0))
    with pytest.raises(ModelLoadError):
        b.load(BackendConfig(model="/nonexistent/model-dir", device="cpu"))
    with pytest.raises(ModelLoadError, match="CUDA"):
        b.load(BackendConfig(model=str(tiny_dirs["qwen25vl"]), device="cpu", quantization="4bit"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA"):
            b.load(BackendConfig(model=str(tiny_dirs["qwen25vl"]), device="cuda"))
    from engine.backends.torch_vlm import make_cache

    b = _backend(tiny_dirs["qwen25vl"])
    with pytest.raises(BackendError, match="nonsense-kind"):
        make_cache("nonsense-kind", b.model.config, "cpu")
    monkeypatch.setitem(sys.modules, "engine.kv", None)  # a build without engine.kv
    with pytest.raises(BackendError, match="not available in this build"):
        make_cache("tailor", b.model.config, "cpu")


@pytest.mark.slow
def test_presence_run_cli_end_to_end(tiny_dirs, short_clip, tmp_path):
    """`presence run --backend torch --model DIR --source CLIP --headless --fast` on a tiny Qwen3-VL."""
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "run.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "run", "--backend", "torch", "--model", str(tiny_dirs["qwen3vl"]),
         "--source", str(short_clip), "--headless", "--fast", "--quiet", "--no-speak", "--log", str(log),
         "--store", str(tmp_path / "s.sqlite")],
        cwd=root, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = [e for e in events if e["type"] == "decision"]
    assert [d["t"] for d in decisions] == list(range(12))  # one record per second of a 12 s clip
    assert all(d["action"] in ("silence", "response", "delegate") for d in decisions)
    ctx = [d["tokens"]["context"] for d in decisions]
    assert all(b > a for a, b in zip(ctx, ctx[1:], strict=False))  # one growing context, never re-prefilled
    assert all(d["kv_bytes"]["fast"] > 0 and d["latency_ms"]["prefill"] > 0 for d in decisions)
    # each tick prefilled only its own turn (+ the previous decision), never the history
    assert max(d["tokens"]["new"] for d in decisions[1:]) < ctx[0]


@pytest.mark.slow
def test_missing_model_is_one_clear_line_exit_4(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "run", "--backend", "torch", "--model", str(tmp_path / "nope"),
         "--source", str(tmp_path / "x.mp4"), "--headless", "--fast", "--quiet"],
        cwd=root, capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert r.returncode in (3, 4), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
