"""The packed-GQA attention of the full cache (engine/kv/packed.py via engine/kv/attention.py) against stock SDPA.

It must compute the same attention as transformers' own SDPA path (repeat_kv + a bottom-right
causal mask) while never building a (new x context) mask nor copying the cache's KV heads.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.kv import KVOptions  # noqa: E402
from engine.kv import attention as torch_attention  # noqa: E402
from engine.prompts import system_prompt  # noqa: E402
from tests.tiny_models import build_tiny_qwen3vl, build_tiny_qwen25vl  # noqa: E402


def _stock(query, key, value, rep: int):
    """transformers' path with a materialised bottom-right causal mask: query [B,Hq,q,D] → [B,q,Hq,D]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    q, t = query.shape[2], key.shape[2]
    mask = (torch.arange(t)[None, :] <= torch.arange(t - q, t)[:, None])[None, None]  # [1, 1, q, T]
    module = SimpleNamespace(is_causal=True, num_key_value_groups=rep)
    return sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)[0]


@pytest.mark.parametrize("hq,hkv,q,t", [(4, 2, 1, 50), (4, 2, 7, 50), (4, 2, 30, 30), (8, 2, 5, 40), (2, 2, 6, 20)])
def test_packed_attention_equals_stock_sdpa(hq, hkv, q, t):
    g = torch.Generator().manual_seed(q * 100 + t)
    query = torch.randn(1, hq, q, 16, generator=g)  # [B, Hq, q, D]
    buf_k = torch.randn(1, hkv, t + 13, 16, generator=g)  # a growing cache hands attention a view of its buffer
    buf_v = torch.randn(1, hkv, t + 13, 16, generator=g)
    key, value = buf_k[:, :, :t], buf_v[:, :, :t]  # [B, Hkv, T, D]
    module = SimpleNamespace(is_causal=True, num_key_value_groups=hq // hkv)
    out, _ = torch_attention.presence_attention(module, query, key, value, None, scaling=0.3)
    ref = _stock(query, key, value, hq // hkv)
    assert out.shape == ref.shape == (1, q, hq, 16)
    assert float((out - ref).abs().max()) < 1e-5


def test_mask_function_skips_only_the_plain_causal_case():
    from transformers.masking_utils import causal_mask_function

    plain = dict(batch_size=1, q_length=5, kv_length=40, q_offset=35, kv_offset=0,
                 mask_function=causal_mask_function, attention_mask=None)
    assert torch_attention.presence_mask(**plain) is None
    padded = dict(plain, attention_mask=torch.tensor([[0] * 3 + [1] * 37], dtype=torch.bool))
    assert torch_attention.presence_mask(**padded) is not None  # padding: the stock mask
    static = dict(plain, kv_length=64)  # keys beyond the chunk (a static cache): not bottom-right
    assert torch_attention.presence_mask(**static) is not None


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny-attn")
    return {"qwen25vl": build_tiny_qwen25vl(base / "q25"), "qwen3vl": build_tiny_qwen3vl(base / "q3")}


def _ticks(b: TorchBackend, n: int) -> list:
    """n ticks (frames of two sizes, a query); the next-token logits after every observe."""
    out = []
    b.start_chunk(ChunkPrefix(system=system_prompt("native", True), text=""))
    for t in range(n):
        side = (64, 96) if t % 2 else (64, 64)
        pixels = np.random.default_rng(t).integers(0, 256, size=(*side, 3), dtype=np.uint8)
        b.observe(Turn(t=t, pixels=pixels, query="what changed?" if t == 1 else None))
        out.append(b.next_logits())
        list(b.decide(max_tokens=4))
        b.commit("</response> it moved" if t == 2 else "</silence>")
    return out


@pytest.mark.parametrize("name", ["qwen25vl", "qwen3vl"])
def test_fast_path_ticks_equal_the_stock_path_and_build_no_mask(tiny_dirs, name, monkeypatch):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stock = TorchBackend()
        stock.load(BackendConfig(model=str(tiny_dirs[name]), device="cpu", dtype="float32", greedy=True,
                                 kv=KVOptions(fast_attention=False)))
        assert torch_attention.text_impl(stock.model) == "sdpa"
        want = _ticks(stock, 4)

        fast = TorchBackend()
        fast.load(BackendConfig(model=str(tiny_dirs[name]), device="cpu", dtype="float32", greedy=True))
        assert torch_attention.text_impl(fast.model) == torch_attention.ATTN_IMPLEMENTATION

        def forbidden(*a, **k):
            raise AssertionError("O(context) work on the fast path")

        import transformers.integrations.sdpa_attention as sdpa_mod
        import transformers.masking_utils as mu

        monkeypatch.setattr(sdpa_mod, "repeat_kv", forbidden)  # no KV-head copies of the cache
        monkeypatch.setattr(mu, "sdpa_mask", forbidden)  # no materialised (new x context) mask
        got = _ticks(fast, 4)
    finally:
        torch.set_num_threads(old)
    assert fast.context_ids() == stock.context_ids()
    worst = max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))
    assert worst <= 1e-4, f"fast vs stock attention: max |Δ| = {worst:.2e}"
