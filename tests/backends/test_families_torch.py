"""The torch backend on tiny random SmolVLM2 (Idefics3), Gemma 3 and LLaVA-1.5 checkpoints built from config.

The turn layout and the image text come from each model's chat template; after incremental ticks (frames, a
query, a decision rolled back at commit) the next-token logits equal those of ONE full forward over the same
tokens and frames, the property the Qwen-VL tests assert (tests/engine/test_torch_backend.py).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.kv import KVOptions  # noqa: E402
from tests.backends.family_models import checkpoint  # noqa: E402

pytestmark = pytest.mark.slow
PREFIX = ChunkPrefix(system="You watch a stream. Reply with </silence> or </response> text.", text="[Q&A History]\n#1 x")
MARKERS = {"smolvlm2": "<image>", "gemma3": "<start_of_image>", "llava": "<image>"}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, one_torch_thread):
    base = tmp_path_factory.getbasetemp()
    return {name: checkpoint(name, base) for name in MARKERS}


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _full_forward_logits(b: TorchBackend):
    """One forward over the whole token sequence with every frame, the model computing positions itself."""
    ctx = b.ctx
    ids = torch.tensor([ctx.context_ids()], dtype=torch.long)  # [1, T]
    kw: dict = dict(input_ids=ids, mm_token_type_ids=(ids == ctx.image_token_id).int())  # as TorchContext passes
    if ctx.images:
        kw["pixel_values"] = torch.cat([pv for pv, _ in ctx.images]).to(b.model.dtype)
        for key in ctx.image_extras[0]:
            if key == "pixel_attention_mask":
                kw[key] = torch.cat([e[key] for e in ctx.image_extras])
            elif key in ("token_type_ids", "mm_token_type_ids"):
                kw[key] = (ids == ctx.image_token_id).int()
    with torch.inference_mode():
        return b.model(**kw).logits[0, -1].float()


@pytest.mark.parametrize("family", list(MARKERS))
def test_incremental_ticks_match_one_full_forward(dirs, family):
    b = TorchBackend()
    b.load(BackendConfig(model=str(dirs[family]), device="cpu", dtype="float32", seed=0, n_ctx=4096,
                         options={"record_images": True}, kv=KVOptions(fast_attention=False)))
    assert b.ctx.image_marker == MARKERS[family]
    assert not b.layout.user_close.startswith("<|im_end|>")  # the family's layout, not ChatML
    b.start_chunk(PREFIX)
    worst = 0.0
    for t, size, query in [(0, (64, 64), None), (1, (48, 80), None), (2, (64, 64), "what changed?"), (3, None, None)]:
        b.observe(Turn(t=t, pixels=_frame(*size, seed=t) if size else None, query=query))
        worst = max(worst, float((b.next_logits() - _full_forward_logits(b)).abs().max()))
        raw = "".join(b.decide(max_tokens=4))
        b.commit("</response> the slide changed" if t == 2 else raw or "</silence>")  # t=2: commit rolls back
    b.observe(Turn(t=4, pixels=_frame(80, 48, seed=4)))
    worst = max(worst, float((b.next_logits() - _full_forward_logits(b)).abs().max()))
    assert len(b.ctx.images) == 4
    assert worst <= 1e-4, f"{family}: incremental vs full forward max |Δ| = {worst:.2e}"
    # control: the comparison can fail — the last frame swapped in the reference changes the logits
    b.ctx.images[-1] = (b.ctx.images[-1][0].flip(-1), b.ctx.images[-1][1])
    assert float((b.next_logits() - _full_forward_logits(b)).abs().max()) > 1e-3
