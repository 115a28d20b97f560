"""DAMI-style dynamic model interpolation (Qt-free).

θ(λ) = (1−λ)·θ_Instruct + λ·θ_Thinking for two checkpoints of one architecture, with a per-question
reasoning intensity λ(q). "DAMI-style" because only the paper's abstract is public: the λ estimators and
serving strategies here are our reconstructions (docs/dami.md).

Modules: ``interp`` (pair check, interpolation, module mask), ``serve`` (in-place delta swaps, bucket
cache), ``gguf_merge`` (one merged GGUF per λ bucket), ``lam`` (buckets, zero-shot and trained λ(q)),
``scoring`` (the model passes the estimators need), ``tiny_pair`` (a real, tiny Instruct/Thinking pair
trained here on multi-digit addition).
"""

__all__ = ["BUCKETS", "MODULES", "PairError", "check_pair", "interpolate", "interpolate_state", "module_of",
           "snap"]
_LAZY = {"BUCKETS": "options", "MODULES": "options", "PairError": "interp", "check_pair": "interp",
         "interpolate": "interp", "interpolate_state": "interp", "module_of": "interp", "snap": "lam"}


def __getattr__(name: str):
    """Lazy: ``engine.dami.options`` (the settings) must not pull torch in; the rest loads on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"engine.dami.{_LAZY[name]}"), name)
    raise AttributeError(name)
