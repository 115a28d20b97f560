"""The llamacpp backend on tiny random SmolVLM2 (Idefics3), Gemma 3, LLaVA-1.5, Qwen2.5-VL and Qwen3-VL GGUFs,
converted in the test from checkpoints built from config (tests/backends/family_models.py) with llama.cpp's own converter
(``make gguf-converter``), so a fresh clone runs them without any shared assets.

The layout comes from the GGUF's embedded chat template; after incremental ticks (frames, a query, decisions
rolled back at commit) the next-token logits equal one fresh context's over the same history. llama.cpp's
converter has no projector for LLaVA-1.5's CLIP tower (its ``LlavaForConditionalGeneration`` mmproj path
takes Pixtral / Mistral 3 only), so LLaVA runs text-only here and with frames on the torch side.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("transformers")

from engine.backends.base import BackendConfig, LlamaCppOptions  # noqa: E402
from engine.backends.gguf_sequence import Piece  # noqa: E402
from engine.backends.llamacpp import LlamaCppBackend  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.protocol import normalize  # noqa: E402
from tests.backends.family_models import gguf_pairs  # noqa: E402

pytestmark = pytest.mark.slow
PREFIX = ChunkPrefix(system="You watch a stream. Reply with </silence> or </response> text.", text="[Q&A History]\n#1 x")
# what each family's template writes around a user turn: the layout is the template's, not ChatML
EXPECT = {"smolvlm2": ("User: ", "<end_of_utterance>\nAssistant: "),
          "gemma3": ("<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n"),
          "llava": ("USER: ", " ASSISTANT: "),
          "qwen2.5-vl": ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
          "qwen3-vl": ("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n")}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from training.gguf import converter_dir

    if converter_dir() is None:
        pytest.skip("llama.cpp's converter is not installed: run `make gguf-converter`")
    base = tmp_path_factory.getbasetemp()
    return gguf_pairs(list(EXPECT), base)


def load(model) -> LlamaCppBackend:
    b = LlamaCppBackend()
    b.load(BackendConfig(model=str(model), n_ctx=2048, seed=7, llamacpp=LlamaCppOptions(n_threads=1)))
    return b


def frame(seed: int, size=(64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", list(EXPECT))
def test_incremental_ticks_match_a_fresh_context(pairs, family):
    model, mmproj, why = pairs[family]
    assert (mmproj is None) == (family == "llava"), why  # the projector llama.cpp converts, or says it cannot
    live, fresh = load(model), load(model)
    try:
        assert (live.layout.user_open, live.layout.user_close) == EXPECT[family]
        assert live.wants_frames == (mmproj is not None)
        live.start_chunk(PREFIX)
        for t in range(3):
            live.observe(Turn(t=t, pixels=frame(t), query="Tell me when the colour changes." if t == 1 else None))
            live.commit(normalize("".join(live.decide(6))).canonical())
        live.observe(Turn(t=3, pixels=frame(3)))
        inc = live.logits()
        history = list(live.seq.history)
        assert live.seq.n_cells == live.seq.cells_needed(history)  # the cache holds exactly the history
        ref = fresh.replay(history)
        assert int(np.argmax(ref)) == int(np.argmax(inc))
        assert float(np.max(np.abs(ref - inc))) <= 1e-2
        images = [i for i, p in enumerate(history) if p.kind == "image"]
        if family == "smolvlm2":  # a frame is a tile and an overview: two image chunks, each its own piece
            assert [history[i].part for i in images[:2]] == [0, 1]
        if images:  # control: the comparison can fail — a different last frame gives different logits
            last = images[-1]
            changed = history[:last] + [Piece("image", pixels=frame(99), part=history[last].part)] + history[last + 1:]
            assert float(np.max(np.abs(fresh.replay(changed) - inc))) > 1e-3
        else:  # text-only: a different time marker gives different logits
            changed = history[:-1] + [Piece("text", live.ctx.tokenize("<9.0 seconds>" + live.layout.user_close))]
            assert float(np.max(np.abs(fresh.replay(changed) - inc))) > 1e-3
    finally:
        live.close()
        fresh.close()
