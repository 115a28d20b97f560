"""Bookkeeping of the cache layers without a GPU or a model: bytes per token, flushing, rollback, reset,
and retrieval that is exactly top-k when the sketch is exact."""

from __future__ import annotations

import pytest
import torch

from engine.kv import KiviLayer, SinkLayer, SparseLayer
from engine.kv.quant import bytes_per_token

B, H, D = 1, 2, 64


def kvs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, n, D, generator=g), torch.randn(B, H, n, D, generator=g)


def feed(layer, k, v, chunks):
    s = 0
    for c in chunks:
        out = layer.update(k[:, :, s: s + c], v[:, :, s: s + c])
        if hasattr(layer, "attend"):
            layer.attend(torch.randn(B, 2 * H, c, D), D**-0.5)
        s += c
    return out


def test_kivi_flushes_whole_groups_and_keeps_the_residual_window():
    layer = KiviLayer(bits=2, group=64, residual=128)
    k, v = kvs(1000)
    for n in (100, 191, 192, 500, 1000):
        layer.reset()
        feed(layer, k, v, [n // 3, 1, n - n // 3 - 1])
        r = layer.res_k.shape[-2]
        assert layer.n_q % 64 == 0 and layer.n_q + r == n == layer.get_seq_length()
        assert r < 128 + 64 and (r >= 128 or layer.n_q == 0)


def test_kivi_bytes_per_token_match_the_formula():
    layer = KiviLayer(bits=2, group=64, residual=128)
    k, v = kvs(4000)
    feed(layer, k.half(), v.half(), [1400, 1, 2599])
    fast, offload = layer.nbytes()
    r = layer.res_k.shape[-2]
    fp_tokens = r + layer.shadow_k.shape[-2]  # fp16 residual + rollback shadow (192 = R + G tokens)
    assert layer.shadow_k.shape[-2] == 192
    expected = layer.n_q * (bytes_per_token(H, D, 2, 64) * 2) + fp_tokens * H * D * 2 * 2
    # codes grow in place with spare capacity (grow.py), which is counted: at most 1/8 + one minimum step
    assert offload == 0 and expected <= fast <= expected * 1.125 + 64_000
    assert fast * 4 < 4000 * H * D * 2 * 2  # > 4x below fp16 at 4k, fp windows included


@pytest.mark.parametrize("extra", [1, 42, 128])
def test_kivi_rollback_up_to_the_residual_is_exact(extra):
    layer = KiviLayer(bits=2)
    k, v = kvs(700)
    feed(layer, k, v, [500])
    before = [t.clone() for t in layer._dense()]
    feed(layer, k[:, :, 500:], v[:, :, 500:], [extra - extra // 2, *([1] * (extra // 2))])  # crosses a flush
    layer.crop(-extra)
    assert layer.get_seq_length() == 500 and layer.n_q == 320
    assert all(torch.equal(a, b) for a, b in zip(before, layer._dense(), strict=True))
    fresh = KiviLayer(bits=2)
    feed(fresh, k, v, [500])
    assert layer.res_k.shape == fresh.res_k.shape


def test_kivi_deep_crop_re_expands_groups():
    layer = KiviLayer(bits=4)
    k, v = kvs(600)
    feed(layer, k, v, [600])
    layer.crop(-400)
    feed(layer, k[:, :, 200:300], v[:, :, 200:300], [100])
    keys, _ = layer._dense()
    assert layer.get_seq_length() == keys.shape[-2] == 300
    assert (keys - k[:, :, :300]).abs().max() < 0.5  # 4-bit approximation of the re-expanded tokens
    with pytest.raises(ValueError):
        layer.crop(5)


def sparse(**kw):
    return SparseLayer(**{"top_k": 16, "sinks": 4, "window": 32, "channels": D, "sketch_bits": 16, "group": 16,
                          "chunk_top_k": 32, "rerank": 1, **kw})


def test_sparse_tiers_hold_what_the_layout_says():
    layer = sparse(sketch_bits=2)
    k, v = kvs(1000)
    feed(layer, k, v, [300, 1, 1, 400, 1, 297])
    assert layer.get_seq_length() == 1000
    assert layer.sink_k.shape[-2] == 4
    assert 32 <= layer.win_k.shape[-2] < 32 + 16 and (layer.e - 4) % 16 == 0
    assert layer.e + layer.win_k.shape[-2] == 1000
    fast, offload = layer.nbytes()
    assert offload >= 1000 * H * D * 4 * 2  # the whole history, K and V, in the store
    sketch = (layer.e - 4) * bytes_per_token(H, D, 2, 16)  # 2-bit keys only
    fp = (4 + layer.win_k.shape[-2]) * H * D * 4 * 2
    used = sketch + fp + H * D * 4  # + max|K| per channel
    assert used <= fast <= used + sketch / 8 + 64_000  # the sketch's spare capacity is counted too
    # the store holds exact rows
    assert torch.equal(layer.store.range(0, 1000)[0], k)


def test_selection_is_the_true_top_k_when_the_sketch_is_exact():
    layer = sparse()
    k, v = kvs(500, seed=3)
    feed(layer, k, v, [500])
    for q_len in (1, 3):  # a decoded token, and a chunk: every (head, token) row adds its attention mass
        q = torch.randn(B, 2 * H, q_len, D)
        idx = layer.select(q)
        rows = q.reshape(B, H, 2 * q_len, D)
        mass = (rows @ k[:, :, 4: layer.e].transpose(-1, -2) * D**-0.5).softmax(-1).sum(2)  # [B, H, M]
        truth = mass.topk(idx.shape[-1], -1).indices + 4
        assert idx.shape[-1] == (16 if q_len == 1 else layer.chunk_top_k)
        assert torch.equal(idx.sort(-1).values, truth.sort(-1).values)
        # the GQA-mean query (TailorKV's rule) picks a different set here: the test can tell them apart
        qbar = rows.mean(2)
        mean_pick = torch.einsum("bhd,bhtd->bht", qbar, k[:, :, 4: layer.e]).topk(idx.shape[-1], -1).indices + 4
        assert not torch.equal(idx.sort(-1).values, mean_pick.sort(-1).values)


@pytest.mark.parametrize(("store_bits", "cut"), [(16, 204), (8, 40), (8, 48)])
def test_sparse_crop_equals_a_fresh_layer_fed_less(store_bits, cut):
    """Exact for any depth over an fp16 store; over the 8-bit store, exact up to window + group tokens (32 + 16
    here: the fp shadow of the last flushed rows supplies the window; a deeper crop re-reads approximate rows)."""
    k, v = kvs(700)
    a, b = (sparse(sketch_bits=4, store_bits=store_bits) for _ in range(2))
    feed(a, k, v, [300, 200, 1, 1, 150])
    a.crop(-cut)
    feed(b, k, v, [300, 352 - cut])
    assert a.get_seq_length() == b.get_seq_length() == 652 - cut
    n = 652 - cut
    q = torch.randn(B, 2 * H, 1, D)
    assert a.e == b.e and torch.equal(a.maxabs, b.maxabs) and torch.equal(a.win_k, b.win_k)
    assert torch.equal(a.select(q), b.select(q))
    a.update(k[:, :, n: n + 1], v[:, :, n: n + 1])
    b.update(k[:, :, n: n + 1], v[:, :, n: n + 1])
    assert torch.allclose(a.attend(q, D**-0.5), b.attend(q, D**-0.5), atol=1e-6)


def test_compact_store_halves_the_offload_tier_within_its_error_bound():
    from engine.kv.store import RowStore

    k, v = kvs(500, seed=9)
    a, b = (sparse(sketch_bits=2, store_bits=bits, store_dtype=torch.float16) for bits in (16, 8))
    for layer in (a, b):
        feed(layer, k, v, [500])
    assert b.store.nbytes / a.store.nbytes == pytest.approx((D + 2) / (2 * D))  # int8 rows + an fp16 scale
    kq, vq = b.store.range(0, 500)
    scale = k.abs().amax(-1, keepdim=True) / 127
    assert ((kq.float() - k).abs() <= scale / 2 + 2e-3 * k.abs() + 1e-3).all()  # + the fp16 output rounding
    assert not torch.equal(kq.float(), k.half().float())  # really 8-bit, not a copy
    # a deep crop (past the fp shadow) re-reads approximate rows: close to, not equal to, a fresh layer's
    b.crop(-300)
    fresh = sparse(sketch_bits=2, store_bits=8, store_dtype=torch.float16)
    feed(fresh, k, v, [200])
    assert b.win_k.shape == fresh.win_k.shape and (b.win_k.float() - fresh.win_k.float()).abs().max() < 0.05
    with pytest.raises(ValueError):
        RowStore(4, torch.float16, "cpu")


def test_chunk_reset_empties_every_tier():
    layer = sparse()
    k, v = kvs(200)
    feed(layer, k, v, [200])
    layer.reset()
    assert layer.get_seq_length() == 0 and layer.nbytes() == (0, 0)
    feed(layer, k, v, [10])
    assert layer.get_seq_length() == 10 and layer.sink_k.shape[-2] == 4


def test_update_without_attend_is_refused():
    layer = sparse()
    k, v = kvs(4)
    layer.update(k, v)
    with pytest.raises(RuntimeError, match="presence_kv"):
        layer.update(k, v)


def test_sink_layer_keeps_sinks_and_window_only():
    layer = SinkLayer(sinks=4, window=50)
    k, v = kvs(500)
    feed(layer, k, v, [100, 1, 1, 398])
    layer.update(k[:, :, :1], v[:, :, :1])  # the next call evicts what left the window
    layer.attend(torch.randn(B, 2 * H, 1, D), D**-0.5)
    assert layer.get_seq_length() == 501
    assert torch.equal(layer.sink_k, k[:, :, :4])
    fast, offload = layer.nbytes()
    assert offload == 0 and fast == (4 + 51) * H * D * 4 * 2
    layer.crop(-1)
    assert layer.get_seq_length() == 500 and torch.equal(layer.win_k, k[:, :, 450:500])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: pinned host store + device fast tier")
def test_cuda_store_is_pinned_and_matches_cpu():
    k, v = kvs(300)
    q = torch.randn(B, 2 * H, 1, D)
    cpu, gpu = sparse(sketch_bits=4), sparse(sketch_bits=4, offload_device="cpu")
    feed(cpu, k, v, [299])
    feed(gpu, k.cuda(), v.cuda(), [299])
    assert gpu.store.cols[0].buf.device.type == "cpu" and gpu.store.cols[0].buf.is_pinned() and gpu.win_k.is_cuda
    cpu.update(k[:, :, 299:], v[:, :, 299:])
    gpu.update(k[:, :, 299:].cuda(), v[:, :, 299:].cuda())
    assert torch.allclose(cpu.attend(q, D**-0.5), gpu.attend(q.cuda(), D**-0.5).cpu(), atol=1e-4)


@pytest.mark.parametrize("make", [lambda sd: sparse(sketch_bits=2, store_dtype=sd),
                                  lambda sd: KiviLayer(bits=2, store_dtype=sd),
                                  lambda sd: SinkLayer(sinks=4, window=50, store_dtype=sd)],
                         ids=["sparse", "kivi", "sink"])
def test_16bit_storage_halves_the_fp_windows_and_computes_in_fp32(make):
    k, v = kvs(700)
    a, b = make(None), make(torch.float16)
    for layer in (a, b):
        feed(layer, k, v, [400, 1, 1, 298])
    (fa, oa), (fb, ob) = a.nbytes(), b.nbytes()
    assert fb < fa and ob <= oa
    if isinstance(a, SparseLayer):  # the offload store's rows halve too (its group maxima are the same fp32)
        assert b.store.nbytes * 2 == a.store.nbytes and oa - ob == b.store.nbytes
    if isinstance(a, SparseLayer):
        fp = (4 + a.win_k.shape[-2]) * H * D * 2 * 2  # sinks + window, K and V, 2 bytes saved per value
        assert fa - fb == fp and b.win_k.dtype == b.store.dtype == b.store.cols[0].buf.dtype == torch.float16
    q = torch.randn(B, 2 * H, 1, D)
    outs = []
    for layer in (a, b):
        keys, values = layer.update(k[:, :, 699:], v[:, :, 699:])
        assert keys.dtype == torch.float32  # what attention sees stays in the model's dtype
        # KIVI: compare the residual (a flipped 2-bit code would differ by a whole step)
        outs.append(layer.attend(q, D**-0.5) if hasattr(layer, "attend") else keys[:, :, layer.n_q:])
    assert outs[1].dtype == torch.float32 and (outs[0] - outs[1]).abs().max() < 2e-2
    bf = make(torch.bfloat16)
    feed(bf, k.half(), v.half(), [10])  # never upcast, never convert a 16-bit model's windows
    assert bf.sdtype == torch.float16


def _naive_sparse_attention(layer, query, scaling):
    """attend_segments over the same tokens with explicit absolute positions (no layout assumption)."""
    from engine.kv.base import attend_segments

    n_prev = layer._pending[0]
    lo = layer.n - layer.win_k.shape[-2]
    shape = (B, H, -1)
    sink_pos = torch.arange(0, layer.sink_k.shape[-2]).expand(shape)
    win_pos = torch.arange(lo, layer.n).expand(shape)
    idx = layer.select(query)
    if idx is None:
        keys, values, pos = [layer.sink_k, layer.win_k], [layer.sink_v, layer.win_v], [sink_pos, win_pos]
    else:
        fk, fv = layer.fetch(idx)
        keys, values = [layer.sink_k, fk, layer.win_k], [layer.sink_v, fv, layer.win_v]
        pos = [sink_pos, idx, win_pos]
    return attend_segments(query, torch.cat(keys, -2), torch.cat(values, -2), torch.cat(pos, -1), n_prev, scaling)


@pytest.mark.parametrize("top_k", [16, 10_000])
def test_fast_attention_equals_the_naive_positional_path(top_k):
    """The packed bottom-right attention every layer uses (attend_chunk) equals attention with explicit
    per-head positions, across chunks that straddle the sinks, decode steps and fetched middles."""
    layer = SparseLayer(top_k=top_k, sinks=4, window=32, channels=8, sketch_bits=4, group=16, chunk_top_k=top_k,
                        rerank=1)
    k, v = kvs(400, seed=3)
    g = torch.Generator().manual_seed(4)
    s = 0
    for c in (3, 40, 1, 1, 100, 7, 1, 150, 1):
        layer.update(k[:, :, s: s + c], v[:, :, s: s + c])
        query = torch.randn(B, 3 * H, c, D, generator=g)
        naive = _naive_sparse_attention(layer, query, D**-0.5)
        fast = layer.attend(query, D**-0.5)
        assert fast.shape == naive.shape == (B, c, 3 * H, D)
        assert (fast - naive).abs().max() < 1e-5, (s, c)
        s += c
    assert layer.e > layer.sinks  # a middle was sketched, so fetched rows took part


def test_sink_attention_equals_the_naive_positional_path():
    from engine.kv.base import attend_segments

    layer = SinkLayer(sinks=4, window=24)
    k, v = kvs(200, seed=5)
    g = torch.Generator().manual_seed(6)
    s = 0
    for c in (2, 30, 1, 60, 1):
        layer.update(k[:, :, s: s + c], v[:, :, s: s + c])
        query = torch.randn(B, 2 * H, c, D, generator=g)
        w = layer.win_k.shape[-2]
        pos = torch.cat([torch.arange(layer.sink_k.shape[-2]), torch.arange(layer.n - w, layer.n)])
        naive = attend_segments(query, torch.cat([layer.sink_k, layer.win_k], -2),
                                torch.cat([layer.sink_v, layer.win_v], -2), pos, s, D**-0.5)
        assert (layer.attend(query, D**-0.5) - naive).abs().max() < 1e-5
        s += c


@pytest.mark.parametrize("axis", [-1, -2])
def test_growing_storage_equals_cat_and_reallocates_rarely(axis):
    """Appends land in spare capacity: the view equals torch.cat of every part, reallocations are logarithmic
    in the length (not one per append), the counted slack stays within 1/4 (x1.25), and truncate is a rollback."""
    from engine.kv.grow import Growing

    g, parts, reallocs, last = Growing(axis, min_capacity=8), [], 0, None
    for i in range(400):
        t = torch.full((2, 3, 5) if axis == -1 else (2, 5, 3), float(i))
        parts.append(t)
        g.append(t)
        if g.buf.data_ptr() != last:
            reallocs, last = reallocs + 1, g.buf.data_ptr()
    ref = torch.cat(parts, axis)
    assert torch.equal(g.view(), ref)
    assert reallocs <= 30  # ~log(2000/8)/log(1.25); a torch.cat per append would be 400
    assert g.nbytes <= ref.numel() * 4 * 1.25 + 8 * 2 * 3 * 4
    assert g.used_nbytes == ref.numel() * 4
    g.truncate(100)
    g.append(torch.full_like(parts[0], -1.0))
    assert torch.equal(g.view(), torch.cat([ref.narrow(axis, 0, 100), torch.full_like(parts[0], -1.0)], axis))


def test_rerank_recovers_the_exact_top_k_from_a_coarse_sketch():
    """A 1-bit sketch on 8 of 64 channels misranks; when the shortlist (rerank x k) covers the middle, the
    exact keys from the store decide, so the pick is the true top-k of the attention mass."""
    k, v = kvs(600, seed=7)
    q = torch.randn(B, 2 * H, 1, D, generator=torch.Generator().manual_seed(8))
    picks = {}
    for rerank in (1, 40):
        layer = sparse(sketch_bits=1, channels=8, rerank=rerank)
        feed(layer, k, v, [600])
        picks[rerank] = layer.select(q).sort(-1).values
    rows = q.reshape(B, H, 2, D)
    mass = (rows @ k[:, :, 4: layer.e].transpose(-1, -2) * D**-0.5).softmax(-1).sum(2)
    truth = (mass.topk(16, -1).indices + 4).sort(-1).values
    assert torch.equal(picks[40], truth)
    assert not torch.equal(picks[1], truth)  # the coarse sketch alone gets it wrong: the rerank did the work
