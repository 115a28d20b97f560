"""One merged GGUF per λ bucket, written with the ``gguf`` package (llama.cpp then serves it as is).

Per tensor: at λ = 0 / 1 (and for tensors outside the module mask) the input's bytes are copied
unchanged; F32/F16 are interpolated in float32 and cast back; BF16, Q8_0 and any other type the
installed ``gguf`` package can both dequantize and quantize go dequantize → interpolate → requantize.
A type it cannot requantize (most K-quants in gguf 0.19) is refused with one line before anything is
written. Metadata (and so the chat template) comes from the Thinking file from λ ≥ ``thinking_from``,
else from the Instruct file, mirroring the brain's template switch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np

from engine.dami.interp import PairError, check_mask, module_of


class GGUFMergeError(PairError):
    """The two GGUF files cannot be merged (one readable line says why)."""


@cache
def can_requantize(qtype) -> bool:
    """Whether the installed gguf package round-trips this tensor type (probed on one block row)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        return True
    block = GGML_QUANT_SIZES[qtype][0]
    try:
        q = quantize(np.zeros((1, block * 8), dtype=np.float32), qtype)
        dequantize(q, qtype)
    except (NotImplementedError, ValueError, TypeError, KeyError, AttributeError):
        return False
    return True


def _merged(ti, tt, lam: float) -> np.ndarray:
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import dequantize, quantize

    if ti.tensor_type in (Q.F32, Q.F16):
        a, b = ti.data.astype(np.float32), tt.data.astype(np.float32)
        return ((1.0 - lam) * a + lam * b).astype(ti.data.dtype)
    a, b = dequantize(ti.data, ti.tensor_type), dequantize(tt.data, tt.tensor_type)
    return quantize(((1.0 - lam) * a + lam * b).astype(np.float32), ti.tensor_type)


def check_gguf_pair(ri, rt) -> None:
    ni, nt = [t.name for t in ri.tensors], [t.name for t in rt.tensors]
    if ni != nt:
        only = sorted(set(ni) ^ set(nt))
        raise GGUFMergeError(f"not an interpolable GGUF pair: tensor lists differ (e.g. {only[0] if only else 'order'})")
    for ti, tt in zip(ri.tensors, rt.tensors, strict=True):
        if ti.tensor_type != tt.tensor_type:
            raise GGUFMergeError(f"not an interpolable GGUF pair: {ti.name} is {ti.tensor_type.name} vs "
                                 f"{tt.tensor_type.name}; convert both to one type (f16, bf16 or q8_0)")
        if list(ti.shape) != list(tt.shape):
            raise GGUFMergeError(f"not an interpolable GGUF pair: {ti.name} shapes {list(ti.shape)} vs {list(tt.shape)}")
    fi, ft = _field(ri, "tokenizer.ggml.tokens"), _field(rt, "tokenizer.ggml.tokens")
    if fi is not None and ft is not None and fi.contents() != ft.contents():
        raise GGUFMergeError("not an interpolable GGUF pair: the tokenizers' vocabularies differ")


def _field(reader, name):
    return reader.fields.get(name)


def merge_gguf(instruct: str | Path, thinking: str | Path, out: str | Path, lam: float,
               mask: Iterable[str] | None = None, thinking_from: float = 0.5) -> Path:
    """Write θ(λ) as a GGUF at ``out`` (atomically: a temporary file, then a rename)."""
    import gguf

    if not 0.0 <= lam <= 1.0:
        raise GGUFMergeError(f"λ must be in [0, 1], got {lam}")
    m = check_mask(mask)
    try:
        ri, rt = gguf.GGUFReader(str(instruct)), gguf.GGUFReader(str(thinking))
    except (OSError, ValueError) as e:
        raise GGUFMergeError(f"cannot read GGUF pair: {e}") from e
    check_gguf_pair(ri, rt)

    def in_mask(name: str) -> bool:
        return m is None or module_of(name) in m

    def moves(name: str) -> bool:
        return lam not in (0.0, 1.0) and in_mask(name)

    for t in ri.tensors:
        if moves(t.name) and not can_requantize(t.tensor_type):
            raise GGUFMergeError(f"cannot interpolate {t.name}: gguf {_version()} cannot requantize "
                                 f"{t.tensor_type.name}; use f16, bf16 or q8_0 GGUF files")
    meta = rt if lam >= thinking_from else ri
    arch = meta.fields["general.architecture"].contents()
    out = Path(out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), arch)
    for f in meta.fields.values():
        if f.name == gguf.Keys.General.ARCHITECTURE or f.name.startswith("GGUF.") or f.name.startswith("dami."):
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), f.types[0], sub_type=sub)
    w.add_float32("dami.lambda", float(lam))
    w.add_string("dami.module_mask", ",".join(sorted(m)) if m else "all")
    for t in ri.tensors:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    try:
        for ti, tt in zip(ri.tensors, rt.tensors, strict=True):
            if lam == 0.0 or not in_mask(ti.name):
                data = ti.data
            elif lam == 1.0:
                data = tt.data
            else:
                data = _merged(ti, tt, lam)
            w.write_tensor_data(np.ascontiguousarray(data).reshape(ti.data.shape), tensor_endianess=ri.endianess)
        w.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return "?"
