"""The row-split cache (several caches side by side in one batch) gives each row what it gets alone."""

from __future__ import annotations

import pytest
import torch

import engine.kv as kv
from engine.kv.rows import RowSplitCache

CHUNKS = (40, 1, 1, 70, 1, 1, 90, 1)


@pytest.fixture(scope="module")
def model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    return LlamaForCausalLM(cfg).eval().to(torch.float32), cfg


def makers(cfg):
    from transformers import DynamicCache

    small = {"sinks": 4, "window": 8, "group": 16, "residual": 16, "top_k": 8, "plan": {"quantized_layers": [0]}}
    return [lambda: DynamicCache(config=cfg),
            lambda: kv.make_cache("tailor", cfg, "cpu", {**small, "bits": 2, "sketch_bits": 2}),
            lambda: kv.make_cache("sink", cfg, "cpu", {"sinks": 4, "window": 16}),
            lambda: kv.make_cache("quantized", cfg, "cpu", {"bits": 4, "group": 16, "residual": 16})]


def stream(model, cache, ids):
    outs, s = [], 0
    with torch.no_grad():
        for c in CHUNKS:
            outs.append(model(input_ids=ids[:, s: s + c], cache=cache, use_cache=True).logits)
            s += c
    return torch.cat(outs, 1)


def test_rows_equal_each_cache_alone(model):
    m, cfg = model
    m.set_attn_implementation(kv.ATTN_IMPLEMENTATION)
    ids = torch.randint(0, 128, (1, sum(CHUNKS)), generator=torch.Generator().manual_seed(1))
    alone = [stream(m, make(), ids) for make in makers(cfg)]
    split = RowSplitCache([make() for make in makers(cfg)])
    rows = stream(m, split, ids.expand(len(split.caches), -1))
    for i, ref in enumerate(alone):
        assert (rows[i: i + 1] - ref).abs().max().item() <= 1e-4, i
    assert (alone[0] - alone[1]).abs().max().item() > 1e-3  # the rows really differ: the check is not vacuous
    assert split.get_seq_length() == sum(CHUNKS) == split.caches[1].get_seq_length()


def test_fork_is_independent_and_rows_must_match_the_batch(model):
    m, cfg = model
    m.set_attn_implementation(kv.ATTN_IMPLEMENTATION)
    from transformers import QuantizedCache

    split = RowSplitCache([make() for make in makers(cfg)[:2]] +
                          [QuantizedCache("quanto", cfg, nbits=2, q_group_size=16, residual_length=16)])
    ids = torch.randint(0, 128, (3, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        m(input_ids=ids[:, :40], cache=split, use_cache=True)
        fork = split.fork()
        a = m(input_ids=ids[:, 40:], cache=fork, use_cache=True).logits
        b = m(input_ids=ids[:, 40:], cache=split, use_cache=True).logits
        assert torch.equal(a, b) and fork.get_seq_length() == split.get_seq_length() == 50
        with pytest.raises(ValueError, match="3 rows"):
            m(input_ids=ids[:1, :1], cache=split, use_cache=True)


def test_a_fork_continues_over_chunks_like_each_cache_alone(model):
    """The passkey grid's path: a shared prefix, a fork, then several multi-token chunks and decoded tokens.
    A fork's mask sizes must agree with its query offset from its first chunk on; a second chunk of a fork once
    built a stock mask and the tagged row-split layer refused it as "padded" (no padding is involved)."""
    m, cfg = model
    m.set_attn_implementation(kv.ATTN_IMPLEMENTATION)
    ids = torch.randint(0, 128, (1, sum(CHUNKS)), generator=torch.Generator().manual_seed(3))
    alone = [stream(m, make(), ids) for make in makers(cfg)]
    split = RowSplitCache([make() for make in makers(cfg)])
    rows = ids.expand(len(split.caches), -1)
    head = CHUNKS[0]
    with torch.no_grad():
        m(input_ids=rows[:, :head], cache=split, use_cache=True)
        fork = split.fork()
        outs, s = [], head
        for c in CHUNKS[1:]:
            outs.append(m(input_ids=rows[:, s: s + c], cache=fork, use_cache=True).logits)
            s += c
    got = torch.cat(outs, 1)
    for i, ref in enumerate(alone):
        assert (got[i: i + 1] - ref[:, head:]).abs().max().item() <= 1e-4, i
    assert split.get_seq_length() == head and fork.get_seq_length() == sum(CHUNKS)
