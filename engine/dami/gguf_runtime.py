"""The ``dami`` brain on llama.cpp: one merged GGUF per λ bucket (written once into a cache directory),
an LRU of K loaded buckets. Each bucket is its own llama.cpp context, so its KV cache (and
llama-cpp-python's prompt-prefix reuse) belongs to that λ alone. λ = 0 and 1 serve the input files
themselves (a merge there would be byte-identical tensors anyway)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from engine.dami.answer import DamiAnswer, probe_messages, strip_thinking
from engine.dami.gguf_merge import check_gguf_pair, merge_gguf
from engine.dami.lam import ZeroShotLambda, choose_lambda, uncertainty
from engine.dami.options import DamiOptions
from engine.dami.serve import BucketCache


def _softmax(row):
    import numpy as np

    z = np.asarray(row, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


class GgufDami:
    def __init__(self, o: DamiOptions):
        import gguf

        self.o = o
        self.paths = Path(o.instruct), Path(o.thinking)
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"dami brain: {p} not found")
        check_gguf_pair(gguf.GGUFReader(str(self.paths[0])), gguf.GGUFReader(str(self.paths[1])))
        self.cache_dir = Path(o.cache_dir or Path.home() / ".cache" / "presence" / "dami")
        ident = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.paths)
        ident += "|" + ",".join(sorted(o.module_mask)) + f"|{o.thinking_from}"
        self.ident = hashlib.sha1(ident.encode()).hexdigest()[:12]
        self.threads = o.threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        self.cache = BucketCache(self._load, o.cache_size, close=lambda llm: llm.close())
        self.zero_shot = ZeroShotLambda(o.u_lo, o.u_hi, tuple(o.buckets))

    def bucket_file(self, lam: float) -> Path:
        """The GGUF serving λ (merged on first use)."""
        if lam == 0.0:
            return self.paths[0]
        if lam == 1.0:
            return self.paths[1]
        out = self.cache_dir / f"{self.paths[0].stem}-{self.ident}-lam{lam:.4f}.gguf"
        if not out.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            merge_gguf(self.paths[0], self.paths[1], out, lam, self.o.module_mask or None, self.o.thinking_from)
        return out

    def _load(self, lam: float):
        from llama_cpp import Llama

        return Llama(model_path=str(self.bucket_file(lam)), n_ctx=self.o.n_ctx, n_threads=self.threads,
                     verbose=False)

    def model_at(self, lam: float):
        hit = lam in self.cache.resident()
        return self.cache.get(lam), "hit" if hit else "miss"

    def _prompt_tokens(self, llm, messages: list[dict]) -> list[int]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = llm.metadata
        fmt = Jinja2ChatFormatter(meta.get("tokenizer.chat_template", ""), eos_token="", bos_token="")
        prompt = fmt(messages=messages).prompt
        return llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def _last_probs(self, llm):
        return _softmax(llm.scores[llm.n_tokens - 1])

    def estimate(self, messages: list[dict]) -> tuple[float, float]:
        """Zero-shot λ(q): a greedy direct answer at λ = 0, teacher-forced at λ = 1."""
        import math

        msgs = probe_messages(messages)
        m0, _ = self.model_at(0.0)
        ids = self._prompt_tokens(m0, msgs)
        m0.reset()
        m0.eval(ids)
        eos = m0.token_eos()
        answer, p_i, logp = [], [], []
        for _ in range(self.o.probe_tokens):
            p = self._last_probs(m0)
            t = int(p.argmax())
            answer.append(t)
            p_i.append(p)
            logp.append(math.log(max(float(p[t]), 1e-30)))
            if t == eos:
                break
            m0.eval([t])
        m1, _ = self.model_at(1.0)
        m1.reset()
        m1.eval(ids)
        js = []
        for j, t in enumerate(answer):
            q = self._last_probs(m1)
            mid = 0.5 * (p_i[j] + q)
            kl = lambda a, b: float((a * (_log(a) - _log(b))).sum())  # noqa: E731
            js.append(0.5 * kl(p_i[j], mid) + 0.5 * kl(q, mid))
            if j + 1 < len(answer):
                m1.eval([t])
        c = math.exp(sum(logp) / len(logp))
        u = uncertainty(c, sum(js) / len(js), self.o.gamma)
        return self.zero_shot(u), u

    def answer(self, messages: list[dict], timeout_s: float) -> DamiAnswer:
        t0 = time.perf_counter()
        lam, u = choose_lambda(self.o, lambda: self.estimate(messages))
        llm, how = self.model_at(lam)
        prompt_ends_open = self._renders_open_think(llm, messages)
        out = llm.create_chat_completion(messages=messages, max_tokens=self.o.max_new_tokens, temperature=0.0)
        text = str(out["choices"][0]["message"]["content"] or "")
        tokens = int(out.get("usage", {}).get("completion_tokens", 0))
        visible, thought = strip_thinking(text, prompt_ends_open)
        return DamiAnswer(visible, lam, tokens, thought, u, time.perf_counter() - t0, how)

    def _renders_open_think(self, llm, messages: list[dict]) -> bool:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        fmt = Jinja2ChatFormatter(llm.metadata.get("tokenizer.chat_template", ""), eos_token="", bos_token="")
        return fmt(messages=messages).prompt.rstrip().endswith("<think>")


def _log(a):
    import numpy as np

    return np.log(np.maximum(a, 1e-30))
