"""DAMI-style GGUF bucket merge: byte-identical ends, llama.cpp logits equal to the torch interpolation
within a declared tolerance, requantized Q8_0, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

from engine.dami.gguf_export import export_qwen3  # noqa: E402
from engine.dami.gguf_merge import GGUFMergeError, merge_gguf  # noqa: E402
from engine.dami.interp import interpolate_state  # noqa: E402
from engine.dami.tiny_pair import random_pair  # noqa: E402

# Declared before running: llama.cpp multiplies f16 weights with f16-rounded activations and the merged
# weights are rounded to f16 once more, so logits may differ from the float32 torch interpolation of the
# same f16 checkpoints by this much (absolute, on logits of order 1).
LOGIT_TOL = 0.02
IDS = [19, 18, 6, 7, 8, 9, 15, 10, 11, 12, 13, 21, 20, 18]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dami_gguf")
    pair = random_pair(d / "pair", spread=0.2)
    out = {"pair": pair, "dir": d}
    for kind in ("f16", "q8_0"):
        out[kind] = (export_qwen3(pair.instruct, d / f"i-{kind}.gguf", kind),
                     export_qwen3(pair.thinking, d / f"t-{kind}.gguf", kind))
    return out


def _tensors(path):
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_merge_ends_are_byte_identical(ggufs, kind):
    gi, gt = ggufs[kind]
    for lam, src in ((0.0, gi), (1.0, gt)):
        merged = _tensors(merge_gguf(gi, gt, ggufs["dir"] / f"m-{kind}-{lam}.gguf", lam))
        ref = _tensors(src)
        assert merged.keys() == ref.keys()
        assert all(merged[k].data.tobytes() == ref[k].data.tobytes() for k in ref)
        assert all(merged[k].tensor_type == ref[k].tensor_type for k in ref)


def test_q8_0_midpoint_is_requantized_interpolation(ggufs):
    from gguf.quants import dequantize

    gi, gt = ggufs["q8_0"]
    merged = _tensors(merge_gguf(gi, gt, ggufs["dir"] / "m-q8-0.5.gguf", 0.5))
    a, b = _tensors(gi), _tensors(gt)
    k = "blk.0.ffn_up.weight"
    assert merged[k].tensor_type == gguf.GGMLQuantizationType.Q8_0
    want = 0.5 * dequantize(a[k].data, a[k].tensor_type) + 0.5 * dequantize(b[k].data, b[k].tensor_type)
    got = dequantize(merged[k].data, merged[k].tensor_type)
    step = np.abs(want).max() / 127  # one Q8_0 quantization step of the largest block
    assert np.abs(got - want).max() <= step and not np.array_equal(got, dequantize(a[k].data, a[k].tensor_type))


def test_merge_mask_and_metadata(ggufs):
    gi, gt = ggufs["f16"]
    merged = merge_gguf(gi, gt, ggufs["dir"] / "m-attn.gguf", 0.5, mask=["attn"])
    m, a = _tensors(merged), _tensors(gi)
    moved = {k for k in a if m[k].data.tobytes() != a[k].data.tobytes()}
    assert moved and all(k.split(".")[2].startswith("attn_") and "norm" not in k for k in moved)
    r = gguf.GGUFReader(str(merged))
    assert abs(r.fields["dami.lambda"].contents() - 0.5) < 1e-7
    assert r.fields["tokenizer.chat_template"].contents().rstrip().endswith("<think>{% endif %}")  # Thinking's
    r0 = gguf.GGUFReader(str(merge_gguf(gi, gt, ggufs["dir"] / "m-0.25.gguf", 0.25)))
    assert "<think>" not in r0.fields["tokenizer.chat_template"].contents().split("A:")[-1]


def test_unsupported_and_mismatched_pairs_are_refused(ggufs, tmp_path):
    def write(path, qtype, nbytes_per_row):
        w = gguf.GGUFWriter(str(path), "qwen3")
        w.add_tensor("blk.0.ffn_up.weight", np.zeros((4, nbytes_per_row), dtype=np.uint8), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path

    q4k = gguf.GGMLQuantizationType.Q4_K
    a = write(tmp_path / "a.gguf", q4k, gguf.GGML_QUANT_SIZES[q4k][1])
    b = write(tmp_path / "b.gguf", q4k, gguf.GGML_QUANT_SIZES[q4k][1])
    with pytest.raises(GGUFMergeError, match="cannot requantize Q4_K; use f16, bf16 or q8_0") as e:
        merge_gguf(a, b, tmp_path / "out.gguf", 0.5)
    assert "\n" not in str(e.value) and not (tmp_path / "out.gguf").exists()
    merge_gguf(a, b, tmp_path / "end.gguf", 1.0)  # the ends need no requantization: allowed
    gi, _ = ggufs["f16"]
    _, tq = ggufs["q8_0"]
    with pytest.raises(GGUFMergeError, match="is F16 vs Q8_0"):
        merge_gguf(gi, tq, tmp_path / "x.gguf", 0.5)


@pytest.mark.slow
def test_llamacpp_logits_match_torch_interpolation(ggufs):
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import AutoModelForCausalLM

    pair = ggufs["pair"]
    gi, gt = ggufs["f16"]
    mi = AutoModelForCausalLM.from_pretrained(pair.instruct, dtype=torch.float32).eval()
    mt = AutoModelForCausalLM.from_pretrained(pair.thinking, dtype=torch.float32).eval()

    def f16(sd):  # the GGUF holds matrices in f16 and 1-D norms in f32: compare against the same inputs
        return {k: (v.half().float() if v.ndim > 1 else v) for k, v in sd.items()}

    sd_i, sd_t = f16(mi.state_dict()), f16(mt.state_dict())
    got = {}
    for lam in (0.0, 0.5, 1.0):
        path = merge_gguf(gi, gt, ggufs["dir"] / f"llama-{lam}.gguf", lam)
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, logits_all=True, verbose=False)
        llm.eval(IDS)
        got[lam] = np.array(llm.scores[: len(IDS)], dtype=np.float32)
        llm.close()
        mi.load_state_dict(interpolate_state(sd_i, sd_t, lam))
        with torch.no_grad():
            want = mi(input_ids=torch.tensor([IDS])).logits[0].numpy()
        err = np.abs(got[lam] - want).max()
        assert err <= LOGIT_TOL, (lam, err)
    # negative control: the three λ really give different logits, far beyond the tolerance
    assert np.abs(got[0.5] - got[0.0]).max() > 10 * LOGIT_TOL and np.abs(got[0.5] - got[1.0]).max() > 10 * LOGIT_TOL
