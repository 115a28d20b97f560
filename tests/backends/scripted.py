"""Scripted model outputs for the backend conformance suite.

``Scripter`` plants logits on any ``LiveContext`` (the FAKE one below, or a real backend's torch / llama.cpp
context): at each decoding step every script whose tokens so far equal the sampled ones votes for its next
token, with that script's weight, so branching outputs (silence vs response) can be scripted too. The
model's own forward still runs (the cache, positions and rollback are real); only the distribution the
decoder samples from is replaced.

``FakeContext`` / ``FakeBackend`` are a FAKE model: a word-piece vocabulary, no weights. They are the
smallest complete ``LiveContext`` and backend, and pin the decoder's rules independent of any tokenizer,
in two vocabularies: protocol markers as special tokens, and markers as plain text sharing ``</``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from engine.backends.base import Backend, BackendConfig
from engine.backends.decoding import DecisionDecoder, Sampling
from engine.backends.gguf_layout import CHATML
from engine.context import ChunkPrefix, Turn

PEAK = 60.0  # a planted logit: with every other logit at 0 the planted token is drawn at any temperature


class Scripter:
    """Plants ``scripts`` (``[(token ids, weight)]``) on ``ctx`` until ``remove()``."""

    def __init__(self, ctx, scripts: Sequence[tuple[Sequence[int], float]], vocab: int):
        self.ctx, self.scripts, self.vocab = ctx, [(list(t), w) for t, w in scripts], vocab
        self.sampled: list[int] = []
        self._logits, self._eval = ctx.logits, ctx.eval_tokens
        ctx.logits, ctx.eval_tokens = self.logits, self.eval_tokens

    def logits(self) -> np.ndarray:
        self._logits()  # the real call still runs (a real context must have logits here)
        out = np.zeros(self.vocab, dtype=np.float32)  # [V]
        k = len(self.sampled)
        for toks, w in self.scripts:
            if len(toks) > k and toks[:k] == self.sampled:
                out[toks[k]] = max(out[toks[k]], w)
        return out

    def eval_tokens(self, tokens: Sequence[int]) -> None:
        self._eval(tokens)
        self.sampled.extend(tokens)

    def remove(self) -> None:
        del self.ctx.logits, self.ctx.eval_tokens  # back to the class's methods


SPECIAL = ["<|im_start|>", "<|im_end|>", "<|image_pad|>", "</silence>", "</response>", "</delegation>",
           "<think>", "</think>"]
PLAIN = ["<|im_start|>", "<|im_end|>", "<|image_pad|>", "</", "sil", "ence>", "response>", "delegation>",
         "<", "think>"]  # "</silence>" = "</" "sil" "ence>": two tokens after the fork, as BPE vocabularies split it
WORDS = ["\n", " ", "system", "user", "assistant", "the", "slide", "changed", "hi", "there", "look", "zq", "!!",
         "<", ">", "0", "1", "2", ".", "seconds", "[", "]", "?"] + [chr(c) for c in range(32, 127)]


class FakeContext:
    """A FAKE ``LiveContext``: greedy longest-match word pieces, no model (logits are all zero)."""

    image_marker = "<|image_pad|>"

    def __init__(self, markers: list[str], n_ctx: int = 4096, seq_id: int = 0):
        self.vocab = list(dict.fromkeys(markers + WORDS))
        self.index = {p: i for i, p in enumerate(self.vocab)}
        self.n_ctx, self.seq_id = n_ctx, seq_id
        self.banned = [self.index["<|image_pad|>"], self.index["<|im_start|>"]]
        self.ids: list[int] = []
        self.pending: list[int] = []

    def __len__(self) -> int:
        return len(self.ids)

    def reset(self) -> None:
        self.ids, self.pending = [], []

    def append(self, text: str, pixels=None) -> None:
        self.ids += self.pending + self.tokenize(text)
        self.pending = []

    def eval_tokens(self, tokens) -> None:
        self.ids += list(tokens)

    def logits(self) -> np.ndarray:
        return np.zeros(len(self.vocab), dtype=np.float32)

    def rollback(self, n: int) -> None:
        del self.ids[n:]

    def queue(self, tokens) -> None:
        self.pending += list(tokens)

    def tokenize(self, text: str) -> list[int]:
        out, i = [], 0
        by_len = sorted(self.index, key=len, reverse=True)
        while i < len(text):
            piece = next(p for p in by_len if text.startswith(p, i))
            out.append(self.index[piece])
            i += len(piece)
        return out

    def detokenize(self, tokens) -> str:
        return "".join(self.vocab[t] for t in tokens)

    def is_stop(self, token: int) -> bool:
        return token == self.index["<|im_end|>"]

    def context_ids(self) -> list[int]:
        return self.ids + self.pending


class FakeBackend(Backend):
    """A FAKE backend: the reference shape of a local backend (a LiveContext + the shared decoder)."""

    name = "fake"

    def __init__(self, markers: list[str]):
        self.markers = markers
        self.ctx = FakeContext(markers)
        self.decoder: DecisionDecoder | None = None
        self._first = True

    def load(self, config: BackendConfig) -> None:
        self.ctx.n_ctx = config.n_ctx
        s = Sampling(config.temperature, config.top_p, config.top_k, config.greedy, config.seed)
        self.decoder = DecisionDecoder.for_context(self.ctx, s, config.silence_bias)

    def context(self, seq_id: int) -> FakeContext:
        return FakeContext(self.markers, self.ctx.n_ctx, seq_id)

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self.ctx.reset()
        self.decoder.reset(self.ctx)
        self.ctx.append(CHATML.chunk_start(prefix.system, prefix.text))
        self._first = True

    def observe(self, turn: Turn) -> None:
        if self.decoder.is_open(self.ctx):
            self.decoder.drop(self.ctx)
        self.ctx.append(CHATML.turn(turn.text_before_image(), None, self._first))
        self._first = False

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield from self.decoder.decide(self.ctx, max_tokens)

    def commit(self, text: str) -> None:
        self.ctx.queue(self.decoder.commit(self.ctx, self.ctx.tokenize(CHATML.decision(text.strip()))))
