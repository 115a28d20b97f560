"""Quantize/dequantize round trips: error bounds per bit width, packing, and the bytes really held."""

from __future__ import annotations

import pytest
import torch

from engine.kv.quant import bytes_per_token, dequantize, pack, quantize, unpack


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pack_unpack_round_trip(bits):
    q = torch.randint(0, 2**bits, (3, 5, 64), dtype=torch.uint8)
    packed = pack(q, bits)
    assert packed.shape[-1] == 64 * bits // 8
    assert torch.equal(unpack(packed, bits), q)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_round_trip_error_within_half_a_step(bits):
    x = torch.randn(2, 3, 16, 256, generator=torch.Generator().manual_seed(bits)) * 3
    qt = quantize(x, bits, 64)
    y = dequantize(qt)
    step = qt.scale.float().repeat_interleave(64, -1)  # per-element quantization step
    # half a step, plus the fp16 rounding of the stored zero and scale (relative 2^-11 of the magnitude)
    bound = step / 2 + (x.abs().amax() * 2**-10) * (2**bits)
    assert ((y - x).abs() <= bound).all()
    # and more bits really means less error
    if bits > 1:
        assert (y - x).abs().mean() < (x - dequantize(quantize(x, bits // 2, 64))).abs().mean()


def test_constant_group_is_exact_enough_and_bytes_are_real():
    x = torch.full((1, 2, 4, 128), 1.25)
    qt = quantize(x, 2, 64)
    assert torch.allclose(dequantize(qt), x, atol=1e-3)
    # 2 bits → 1/4 byte per value; fp16 scale+zero per 64 values
    assert qt.nbytes == 1 * 2 * 4 * (128 // 4 + 2 * 2 * (128 // 64))
    assert bytes_per_token(heads=2, head_dim=4, bits=2, group=64) * 128 == qt.nbytes


def test_bad_shapes_and_bits_are_refused():
    with pytest.raises(ValueError):
        quantize(torch.randn(1, 100), 2, 64)
    with pytest.raises(ValueError):
        quantize(torch.randn(1, 128), 3, 64)
