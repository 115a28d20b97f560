"""The backends the conformance suite runs, each behind one small adapter (``Subject``).

Local backends (a ``LiveContext`` + ``decoding.DecisionDecoder``): the FAKE word-piece model in two
vocabularies, torch with each KV cache kind on a tiny random Qwen2.5-VL, llamacpp on SmolLM2-135M.
The openai backend (against a real ``llama_cpp.server``), lite and heuristic have their own tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.backends.base import Backend, BackendConfig, LlamaCppOptions
from engine.context import ChunkPrefix, Turn
from tests.backends.scripted import PLAIN, SPECIAL, FakeBackend
from tests.tiny_models import smollm2_gguf as smollm2_path  # noqa: E402

PREFIX = ChunkPrefix(system="You watch a stream. Reply with </silence> or </response> text.", text="[Q&A History]\n#1 x")
TORCH_KINDS = ("full", "tailor", "quantized", "sink")
LOCAL = ("fake-special", "fake-plain", *(f"torch-{k}" for k in TORCH_KINDS), "llamacpp")


@dataclass
class Subject:
    name: str
    backend: Backend
    frames: bool  # whether turns carry a frame

    @property
    def ctx(self):
        return self.backend.ctx

    @property
    def vocab(self) -> int:
        return len(self.ctx.logits())

    def turn(self, t: int) -> Turn:
        px = np.random.default_rng(t).integers(0, 256, size=(56, 56, 3), dtype=np.uint8) if self.frames else None
        return Turn(t=t, pixels=px)

    def tokens(self) -> list[int]:
        """Every token the context holds, queued ones included (an image as -1 per cell)."""
        ctx = self.ctx
        if hasattr(ctx, "context_ids"):
            return ctx.context_ids()
        out: list[int] = []
        for p in ctx.seq.history:
            out += list(p.tokens or []) if p.kind == "text" else [-1] * ctx.seq.image_tokens(p.pixels)
        return out + list(ctx._loose)




@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("conformance") / "q25")


@pytest.fixture(scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared 2-core box: no OpenMP spin-waits
    yield
    torch.set_num_threads(old)


def make_subject(name: str, request) -> Subject:
    cfg = BackendConfig(seed=0, n_ctx=4096)  # JoyAI sampling defaults
    if name.startswith("fake"):
        b = FakeBackend(SPECIAL if name == "fake-special" else PLAIN)
        b.load(cfg)
        return Subject(name, b, frames=False)
    if name.startswith("torch"):
        pytest.importorskip("torch")
        request.getfixturevalue("_one_torch_thread")
        from engine.backends.torch_vlm import TorchBackend

        cfg.model, cfg.device, cfg.dtype = str(request.getfixturevalue("tiny_vlm")), "cpu", "float32"
        cfg.kv_cache = name.split("-", 1)[1]
        b = TorchBackend()
        b.load(cfg)
        return Subject(name, b, frames=True)
    pytest.importorskip("llama_cpp")
    from engine.backends.llamacpp import LlamaCppBackend

    cfg.model, cfg.n_ctx, cfg.llamacpp = str(smollm2_path()), 2048, LlamaCppOptions(n_threads=1)
    b = LlamaCppBackend()
    b.load(cfg)
    return Subject(name, b, frames=False)


@pytest.fixture(scope="module", params=LOCAL)
def subject(request):
    s = make_subject(request.param, request)
    yield s
    s.backend.close()
