"""Pair check and weight interpolation W(λ) = (1−λ)·W_I + λ·W_T, exact at both ends.

Exactness: λ = 0 and λ = 1 return the inputs' own tensors (byte-identical, so logits are equal);
in between the arithmetic is done in float32 and cast back to the stored dtype, so a bf16 pair does
not lose the small delta to bf16 rounding twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from engine.dami.options import MODULES  # noqa: E402 - the module-mask vocabulary; anything else is "other"


class PairError(ValueError):
    """The two checkpoints cannot be interpolated (one readable line says why)."""


def module_of(key: str) -> str:
    """Which module family a tensor name belongs to (HF and GGUF names). Norms first: "attn_norm",
    "post_attention_layernorm" and "self_attn.q_norm" are norms, not attention."""
    k = key.lower()
    if "norm" in k:
        return "norm"
    if "embed" in k or "lm_head" in k or "token_embd" in k or k.startswith("output.") or k == "output":
        return "embed"
    if "attn" in k or "attention" in k:
        return "attn"
    if "mlp" in k or "ffn" in k or "feed_forward" in k:
        return "mlp"
    return "other"


def check_mask(mask: Iterable[str] | None) -> frozenset[str] | None:
    """None means every tensor; otherwise a subset of MODULES (an unknown name is one clear error)."""
    if mask is None:
        return None
    m = frozenset(mask)
    bad = sorted(m - set(MODULES))
    if bad:
        raise PairError(f"unknown module mask {bad}: choose from {', '.join(MODULES)}")
    return m


def check_pair(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], names: tuple[str, str] = ("instruct",
               "thinking")) -> None:
    """Same keys, shapes and dtypes, else one PairError line naming the first difference."""
    ka, kb = set(a), set(b)
    if ka != kb:
        only_a, only_b = sorted(ka - kb), sorted(kb - ka)
        what = f"{len(only_a)} tensors only in {names[0]} (e.g. {only_a[0]})" if only_a else \
            f"{len(only_b)} tensors only in {names[1]} (e.g. {only_b[0]})"
        raise PairError(f"not an interpolable pair: {what}")
    for k in sorted(ka):
        (sa, da), (sb, db) = _meta(a, k), _meta(b, k)
        if sa != sb:
            raise PairError(f"not an interpolable pair: {k} is {sa} in {names[0]} but {sb} in {names[1]}")
        if da != db:
            raise PairError(f"not an interpolable pair: {k} is {da} in {names[0]} but {db} in {names[1]}")


def _meta(sd: Mapping, key: str) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) without reading the tensor when the mapping can say (memory-mapped checkpoints)."""
    if hasattr(sd, "meta"):
        return sd.meta(key)
    t = sd[key]
    return tuple(t.shape), str(t.dtype)


def check_tokenizers(vocab_a: Mapping[str, int], vocab_b: Mapping[str, int]) -> None:
    """The two tokenizers must map every token to the same id (chat templates may differ)."""
    if vocab_a != vocab_b:
        diff = sorted(set(vocab_a.items()) ^ set(vocab_b.items()))
        raise PairError(f"not an interpolable pair: tokenizers differ ({len(vocab_a)} vs {len(vocab_b)} tokens; "
                        f"first difference {diff[0] if diff else '?'})")


def interpolate(w_i: torch.Tensor, w_t: torch.Tensor, lam: float) -> torch.Tensor:
    """(1−λ)·W_I + λ·W_T; the inputs themselves at λ = 0 and 1."""
    if lam == 0.0:
        return w_i
    if lam == 1.0:
        return w_t
    if not w_i.is_floating_point():
        raise PairError("cannot interpolate integer tensors (quantized checkpoints: use the GGUF merge)")
    out = torch.lerp(w_i.float(), w_t.float(), float(lam))
    return out.to(w_i.dtype)


def interpolate_state(sd_i: Mapping[str, torch.Tensor], sd_t: Mapping[str, torch.Tensor], lam: float,
                      mask: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """θ(λ) for a whole state dict. With a mask, only the named module families move; the rest stay
    the Instruct model's."""
    if not 0.0 <= lam <= 1.0:
        raise PairError(f"λ must be in [0, 1], got {lam}")
    m = check_mask(mask)
    check_pair(sd_i, sd_t)
    return {k: (interpolate(sd_i[k], sd_t[k], lam) if m is None or module_of(k) in m else sd_i[k]) for k in sd_i}
