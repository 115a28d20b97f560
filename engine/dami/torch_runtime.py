"""The ``dami`` brain on transformers: one resident model with in-place delta swaps, or an LRU of
materialised buckets. λ is chosen before prefill and pinned for the whole answer; every answer starts
a fresh KV cache, so no keys or values of another λ are ever reused."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

from engine.dami.answer import DamiAnswer, probe_messages, strip_thinking
from engine.dami.interp import check_mask, check_pair, check_tokenizers, interpolate, module_of
from engine.dami.lam import PrefEstimator, ZeroShotLambda, choose_lambda, snap, uncertainty
from engine.dami.options import DamiOptions
from engine.dami.scoring import confidence, discrepancy, instruct_probe, teacher_probs
from engine.dami.serve import BucketCache, InPlaceSwapper
from engine.dami.weights import SafetensorsDict


def _dtype(o: DamiOptions, device: str) -> torch.dtype:
    if o.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, o.dtype)


@torch.no_grad()
def load_interpolated(model: torch.nn.Module, sd_i: Mapping, sd_t: Mapping, lam: float, mask=None) -> None:
    """Copy θ(λ) into an already-built model (tied weights are set once)."""
    m = check_mask(mask)
    for n, p in model.named_parameters():
        w = interpolate(sd_i[n], sd_t[n], lam) if m is None or module_of(n) in m else sd_i[n]
        p.copy_(w.to(p.device, p.dtype))


class TorchDami:
    def __init__(self, o: DamiOptions):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.o = o
        self.tok_i = AutoTokenizer.from_pretrained(o.instruct)
        self.tok_t = AutoTokenizer.from_pretrained(o.thinking)
        check_tokenizers(self.tok_i.get_vocab(), self.tok_t.get_vocab())
        self.sd_i, self.sd_t = SafetensorsDict(o.instruct), SafetensorsDict(o.thinking)
        check_pair(self.sd_i, self.sd_t)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if o.device == "auto" else o.device
        self.dtype = _dtype(o, self.device)
        self.mask = tuple(o.module_mask) or None
        self._load = lambda: AutoModelForCausalLM.from_pretrained(o.instruct, dtype=self.dtype).to(self.device).eval()
        self.swapper = self.cache = None
        if o.strategy == "swap":
            self.swapper = InPlaceSwapper(self._load(), lambda: (self.sd_i, self.sd_t), 0.0, self.mask,
                                          o.rebuild_every)
        else:
            self.cache = BucketCache(self._build, o.cache_size)
        self.pref = PrefEstimator.load(o.estimator_path) if o.estimator == "pref" and o.estimator_path else None
        self.zero_shot = ZeroShotLambda(o.u_lo, o.u_hi, tuple(o.buckets))
        gen = getattr(self.swapper.model if self.swapper else self.model_at(0.0)[0], "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        self.eos = sorted({self.tok_i.eos_token_id, *(eos if isinstance(eos, list) else [eos] if eos is not None else [])})

    def _build(self, lam: float) -> torch.nn.Module:
        model = self._load()
        load_interpolated(model, self.sd_i, self.sd_t, lam, self.mask)
        return model

    def model_at(self, lam: float) -> tuple[torch.nn.Module, str]:
        if self.swapper is not None:
            how = self.swapper.set(lam)
            return self.swapper.model, how
        hit = lam in self.cache.resident()
        return self.cache.get(lam), "hit" if hit else "miss"

    def _ids(self, tok, messages: list[dict]) -> tuple[torch.Tensor, str]:
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device), prompt

    def estimate(self, messages: list[dict]) -> tuple[float, float | None]:
        """λ(q) by the configured estimator, from a direct-answer probe of the Instruct weights."""
        ids, _ = self._ids(self.tok_i, probe_messages(messages))
        m0, _ = self.model_at(0.0)
        probe = instruct_probe(m0, ids, self.o.probe_tokens, self.eos[0])
        if self.pref is not None:
            return snap(self.pref.predict(probe.pooled.cpu())[0], self.o.buckets), None
        m1, _ = self.model_at(1.0)
        u = float(uncertainty(float(confidence(probe)[0]), float(discrepancy(probe, teacher_probs(m1, ids,
                                                                                                   probe.answer))[0]),
                              self.o.gamma))
        return self.zero_shot(u), u

    @torch.no_grad()
    def answer(self, messages: list[dict], timeout_s: float) -> DamiAnswer:
        t0 = time.perf_counter()
        lam, u = choose_lambda(self.o, lambda: self.estimate(messages))
        tok = self.tok_t if lam >= self.o.thinking_from else self.tok_i
        ids, prompt = self._ids(tok, messages)
        model, how = self.model_at(lam)  # pinned: the caller's lock keeps λ fixed until the answer is done
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.o.max_new_tokens,
                             do_sample=False, eos_token_id=self.eos, pad_token_id=tok.pad_token_id or self.eos[0],
                             max_time=max(1.0, timeout_s - (time.perf_counter() - t0)))
        gen = out[0, ids.shape[1]:].tolist()
        n = next((i for i, t in enumerate(gen) if t in self.eos), len(gen))
        text = tok.decode(gen[:n], skip_special_tokens=True)
        visible, thought = strip_thinking(text, prompt.rstrip().endswith("<think>"))
        return DamiAnswer(visible, lam, n, thought, u, time.perf_counter() - t0, how)
