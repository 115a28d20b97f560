"""With budgets covering the whole context and 16-bit storage, every Presence cache equals DynamicCache.

Real (random-weight) tiny Qwen2.5-VL and Qwen3-VL checkpoints from tests/tiny_models.py, an image in the
first chunk, then streaming text chunks and single-token decode steps, all in fp32 on CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import engine.kv as kv
from tests.tiny_models import build_tiny_qwen3vl, build_tiny_qwen25vl

CHUNKS = (23, 1, 1, 70, 1, 1, 1, 90, 1, 1)  # text chunks after the image prompt; crosses every window edge
EXACT = [
    ("quantized", {"bits": 16}),
    ("sink", {"window": 10_000}),
    ("tailor", {"bits": 16, "top_k": 10_000}),  # default sinks/window: tokens reach the sketch and are fetched
    ("tailor", {"bits": 16, "top_k": 10_000, "sinks": 4, "window": 8, "group": 16, "residual": 16}),
]


@pytest.fixture(scope="module", params=["qwen25vl", "qwen3vl"])
def vlm(request, tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

    build = build_tiny_qwen25vl if request.param == "qwen25vl" else build_tiny_qwen3vl
    path = build(tmp_path_factory.mktemp(request.param))
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32,
                                                        attn_implementation=kv.ATTN_IMPLEMENTATION).eval()
    tok = AutoTokenizer.from_pretrained(path)
    ip = Qwen2VLImageProcessorPil.from_pretrained(path)
    img = (np.random.default_rng(0).random((56, 56, 3)) * 255).astype("uint8")
    vis = ip(images=[img], return_tensors="pt")
    n_img = int(vis["image_grid_thw"].prod()) // 4
    prompt = "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n_img + "<|vision_end|>What is on the screen?"
    first = tok(prompt, return_tensors="pt").input_ids
    vis["mm_token_type_ids"] = (first == tok.convert_tokens_to_ids("<|image_pad|>")).long()
    rest = torch.randint(10, len(tok), (1, sum(CHUNKS)), generator=torch.Generator().manual_seed(0))
    from transformers import DynamicCache

    ref = _stream(model, DynamicCache(config=model.config), first, vis, rest)
    return model, first, vis, rest, ref


def _stream(model, cache, first, vis, rest) -> torch.Tensor:
    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None  # per-stream M-RoPE state lives on the model
    outs = []
    with torch.no_grad():
        o = model(input_ids=first, pixel_values=vis["pixel_values"], image_grid_thw=vis["image_grid_thw"],
                  mm_token_type_ids=vis["mm_token_type_ids"], cache=cache, use_cache=True)
        outs.append(o.logits)
        s = 0
        for c in CHUNKS:
            o = model(input_ids=rest[:, s: s + c], cache=cache, use_cache=True)
            outs.append(o.logits)
            s += c
    return torch.cat(outs, 1)


@pytest.mark.parametrize("kind,options", EXACT, ids=lambda x: x if isinstance(x, str) else "-".join(map(str, x.values())))
def test_matches_dynamic_cache(vlm, kind, options):
    model, first, vis, rest, ref = vlm
    cache = kv.make_cache(kind, model.config, "cpu", options)
    got = _stream(model, cache, first, vis, rest)
    assert cache.get_seq_length() == first.shape[1] + rest.shape[1]
    assert (got - ref).abs().max().item() <= 1e-4


def test_small_budget_is_not_exact_but_close(vlm):
    """The check above could pass vacuously if the context never left the fast tier: here it must."""
    model, first, vis, rest, ref = vlm
    cache = kv.make_cache("tailor", model.config, "cpu", {"bits": 2, "top_k": 8, "sinks": 4, "window": 8,
                                                         "group": 16, "residual": 16, "sketch_bits": 2})
    got = _stream(model, cache, first, vis, rest)
    b = kv.kv_bytes(cache)
    assert b.offload > 0 and 0 < b.used <= b.fast + b.offload and (got - ref).abs().max().item() > 1e-4
    assert torch.isfinite(got).all()


def test_padding_is_refused_in_one_line():
    from engine.kv import attention
    from engine.kv.base import tag

    plain = dict(batch_size=1, q_length=4, kv_length=4, attention_mask=torch.ones(1, 4, dtype=torch.bool))
    assert attention.presence_mask(**plain) is None  # plain causal: no mask, causality inside
    padded = attention.presence_mask(**{**plain, "attention_mask": torch.tensor([[0, 1, 1, 1]]).bool()})
    assert padded is not None  # padding: the stock mask
    layer = kv.SinkLayer(4, 8)
    q, k = torch.zeros(1, 2, 4, 8), torch.zeros(1, 1, 4, 8)
    key, value = tag(k, k, layer)
    with pytest.raises(ValueError, match="padded"):  # a tagged layer never sees a mask it would ignore
        attention.presence_attention(torch.nn.Module(), q, key, value, padded)


def test_unknown_kind_and_wrong_attention_are_clear_errors():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1)
    with pytest.raises(ValueError, match="unknown kv_cache kind"):
        kv.make_cache("nope", cfg, "cpu")
    model = LlamaForCausalLM(cfg).eval()  # sdpa attention: a tailor cache must refuse, not mis-attend
    cache = kv.make_cache("tailor", cfg, "cpu", {"plan": {"quantized_layers": []}})
    ids = torch.randint(0, 64, (1, 5))
    with torch.no_grad(), pytest.raises(RuntimeError, match="presence_kv"):
        model(ids, cache=cache, use_cache=True)
        model(ids, cache=cache, use_cache=True)
