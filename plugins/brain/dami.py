"""The ``dami`` brain: DAMI-style dynamic interpolation between an Instruct and a Thinking checkpoint.

Per delegated question it picks a reasoning intensity λ (fixed, or λ(q) from a zero-shot or trained
estimator), answers with θ(λ) = (1−λ)·θ_Instruct + λ·θ_Thinking, and hands back only the answer:
thinking never reaches the user or the interaction model. After each ask, ``last_lambda`` and
``last_tokens`` (and ``last``, the full :class:`engine.dami.answer.DamiAnswer`) say how hard it thought.
Transformers directories run on torch (in-place swaps or a bucket cache); GGUF files on llama.cpp (one
merged GGUF per bucket). Text only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading

from engine.brain import BrainError, brain_messages
from engine.dami.answer import DamiAnswer
from engine.dami.interp import PairError
from engine.dami.options import DamiOptions

__all__ = ["DamiBrain", "DamiOptions"]


class DamiBrain:
    name = "dami"
    takes_images = False

    def __init__(self, options: DamiOptions | None = None, **overrides):
        o = dataclasses.replace(options or DamiOptions(), **overrides)
        try:
            o.validate()
            if o.gguf:
                if o.estimator == "pref" and o.lam_mode == "auto":
                    raise ValueError("dami brain: the trained (pref) estimator needs transformers checkpoints")
                from engine.dami.gguf_runtime import GgufDami

                self._rt = GgufDami(o)
            else:
                from engine.dami.torch_runtime import TorchDami

                self._rt = TorchDami(o)
        except (ValueError, PairError, OSError) as exc:
            raise BrainError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        self.options = o
        self.last: DamiAnswer | None = None
        self.last_lambda: float | None = None
        self.last_tokens: int = 0
        self._lock = threading.Lock()  # one model state: λ stays pinned for a whole answer

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            return False, "install torch and transformers (or use two GGUF files with llama-cpp-python)"
        return True, ""

    def answer(self, question: str, context: str, timeout_s: float = 120.0) -> DamiAnswer:
        """The answer with its λ, token count and timing."""
        with self._lock:
            try:
                a = self._rt.answer(brain_messages(question, (context or "")[-6000:]), timeout_s)
            except (RuntimeError, ValueError, OSError) as exc:
                raise BrainError(f"dami brain failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
                    from None
            self.last, self.last_lambda, self.last_tokens = a, a.lam, a.tokens
            return a

    def ask(self, question: str, context: str, frames_jpeg, timeout_s: float) -> str:
        return self.answer(question, context, timeout_s).text
