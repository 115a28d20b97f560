"""DAMI-style interpolation mechanics on a real (tiny, random) Qwen3 pair: exact ends, module mask,
in-place swaps, bucket cache, pair check."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.dami.interp import PairError, check_pair, check_tokenizers, interpolate_state, module_of  # noqa: E402
from engine.dami.serve import BucketCache, InPlaceSwapper  # noqa: E402
from engine.dami.tiny_pair import make_tokenizer, random_pair  # noqa: E402
from engine.dami.weights import SafetensorsDict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    paths = random_pair(tmp_path_factory.mktemp("dami_pair"))
    mi = AutoModelForCausalLM.from_pretrained(paths.instruct, dtype=torch.float32).eval()
    mt = AutoModelForCausalLM.from_pretrained(paths.thinking, dtype=torch.float32).eval()
    return paths, mi, mt


def _sd(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[19, 18, 6, 7, 8, 9, 15, 10, 11, 12, 13, 21, 20, 18]])


def _model_with(mi, sd):
    import copy

    m = copy.deepcopy(mi)
    m.load_state_dict(sd)
    return m


def test_ends_are_byte_identical_and_logits_equal(pair):
    _, mi, mt = pair
    sd_i, sd_t = _sd(mi), _sd(mt)
    for lam, ref, model in ((0.0, sd_i, mi), (1.0, sd_t, mt)):
        merged = interpolate_state(sd_i, sd_t, lam)
        assert all(torch.equal(merged[k], ref[k]) and merged[k].dtype == ref[k].dtype for k in ref)
        assert torch.equal(_logits(_model_with(mi, merged), IDS), _logits(model, IDS))


def test_midpoint_is_the_average_and_differs_from_both(pair):
    _, mi, mt = pair
    sd_i, sd_t = _sd(mi), _sd(mt)
    mid = interpolate_state(sd_i, sd_t, 0.5)
    k = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(mid[k], (sd_i[k] + sd_t[k]) / 2, atol=1e-7)
    lm = _logits(_model_with(mi, mid), IDS)
    assert not torch.allclose(lm, _logits(mi, IDS)) and not torch.allclose(lm, _logits(mt, IDS))


def test_module_mask_moves_only_what_it_names(pair):
    _, mi, mt = pair
    sd_i, sd_t = _sd(mi), _sd(mt)
    merged = interpolate_state(sd_i, sd_t, 0.5, mask=["mlp"])
    moved = {k for k in sd_i if not torch.equal(merged[k], sd_i[k])}
    assert moved and all(module_of(k) == "mlp" for k in moved)
    assert {k for k in sd_i if module_of(k) == "mlp"} == moved
    assert module_of("model.layers.0.self_attn.q_norm.weight") == "norm"
    assert module_of("blk.0.attn_q.weight") == "attn" and module_of("output.weight") == "embed"
    with pytest.raises(PairError, match="unknown module mask"):
        interpolate_state(sd_i, sd_t, 0.5, mask=["ffn"])


def test_mismatched_pair_is_one_clear_error(pair):
    _, mi, mt = pair
    sd_i, sd_t = _sd(mi), _sd(mt)
    k = "model.layers.0.mlp.up_proj.weight"
    bad = dict(sd_t)
    bad[k] = bad[k][:, :-1]
    with pytest.raises(PairError, match=r"up_proj.weight is \(256, 96\) in instruct but \(256, 95\)") as e:
        check_pair(sd_i, bad)
    assert "\n" not in str(e.value)
    missing = {kk: v for kk, v in sd_t.items() if kk != k}
    with pytest.raises(PairError, match="1 tensors only in instruct"):
        check_pair(sd_i, missing)
    vocab = make_tokenizer().get_vocab()
    other = dict(vocab)
    other["x"] = len(other)
    with pytest.raises(PairError, match="tokenizers differ"):
        check_tokenizers(vocab, other)


def test_inplace_swaps_return_and_rebuild_exactly(pair):
    import copy

    paths, mi, mt = pair
    sd_i, sd_t = SafetensorsDict(paths.instruct), SafetensorsDict(paths.thinking)
    model = copy.deepcopy(mi)
    sw = InPlaceSwapper(model, lambda: (sd_i, sd_t), lam=0.25, rebuild_every=100)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    for lam in (0.5, 0.75, 0.625, 0.25):
        assert sw.set(lam) == "swap"
    back = model.state_dict()
    assert max((back[k] - ref[k]).abs().max().item() for k in ref) <= 1e-6
    direct = interpolate_state({k: sd_i[k] for k in sd_i}, {k: sd_t[k] for k in sd_t}, 0.625)
    sw.set(0.625)
    assert max((model.state_dict()[k] - direct[k]).abs().max().item() for k in direct) <= 1e-6
    assert sw.set(1.0) == "rebuild"  # the ends are rebuilt exactly, not reached by drifting deltas
    assert torch.equal(_logits(model, IDS), _logits(mt, IDS))
    assert sw.set(0.0) == "rebuild" and torch.equal(_logits(model, IDS), _logits(mi, IDS))
    sw2 = InPlaceSwapper(copy.deepcopy(mi), lambda: (sd_i, sd_t), lam=0.25, rebuild_every=3)
    assert [sw2.set(x) for x in (0.5, 0.75, 0.5)] == ["swap", "swap", "rebuild"]


def test_bucket_cache_equals_direct_interpolation_and_evicts_lru(pair):
    import copy

    _, mi, mt = pair
    sd_i, sd_t = _sd(mi), _sd(mt)
    built, closed = [], []

    def build(lam):
        built.append(lam)
        return _model_with(copy.deepcopy(mi), interpolate_state(sd_i, sd_t, lam))

    cache = BucketCache(build, capacity=2, close=closed.append)
    m = cache.get(0.5)
    direct = _model_with(mi, interpolate_state(sd_i, sd_t, 0.5))
    assert torch.equal(_logits(m, IDS), _logits(direct, IDS))
    assert cache.get(0.5) is m and cache.hits == 1
    cache.get(0.75)
    cache.get(0.5)  # 0.5 becomes most recent: 0.75 is evicted next
    cache.get(1.0)
    assert cache.resident() == [0.5, 1.0] and built == [0.5, 0.75, 1.0] and len(closed) == 1
