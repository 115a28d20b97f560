"""The per-second decision rule, once, for every local backend: sample the decision token by token on a
live context, stop at the end of its line, and roll the context back to exactly the committed text.

A backend supplies a ``LiveContext`` (one live token sequence of a loaded model); everything else is here::

    LiveContext (per backend)                    this module (shared)
    ─────────────────────────                    ────────────────────
    append(text, pixels)   turn / chunk prefix   sample(logits, Sampling, rng)     JoyAI 0.8 / 0.9 / 40
    eval_tokens(tokens)    one decision token     SilenceBias.apply(logits, sofar)  talkativeness
    logits() -> [V]        after the last eval    decision_line(text)               think-aware stop rule
    rollback(n)            keep the first n       DecisionDecoder.decide(ctx, n)    the loop: yields text
    queue(tokens)          commit's leftovers     DecisionDecoder.commit(ctx, tok)  rollback to the prefix
    tokenize / detokenize

One loaded model may hold several live contexts: each has a ``seq_id`` (llama.cpp's sequence id; a torch
context owns its own cache), and the decoder keeps each one's open decision under that id.

Laying out a chunk and committing decisions (what the backends do; training lays episodes out the same
way, e.g. to collect the token ids of a chunk and which of them are decision tokens)::

    ctx.reset()
    ctx.append(layout.chunk_start(system, prefix_text))                  # <|im_start|>system … user\\n
    for i, (turn, decision) in enumerate(episode):
        ctx.append(layout.turn(turn.text_before_image(), ctx.image_marker if turn.pixels is not None
                               else None, i == 0), turn.pixels)           # … <|im_start|>assistant\\n
        start = len(ctx)                                                  # decision tokens begin here
        text = "".join(decoder.decide(ctx, max_tokens))                  # inference only: sample a line
        ctx.queue(decoder.commit(ctx, ctx.tokenize(layout.decision(normalize(text).canonical()))))
        # training: skip decide(); commit() with no open decision leaves the context as it was, so the
        # queued tokens are exactly the decision: ``start .. start + len(queued)`` are its positions

``commit`` keeps the sampled tokens that already equal the start of the committed text (no recompute)
and returns the rest, which the context evaluates when it likes (``queue``: torch prefills them with the
next turn, one forward per tick; llama.cpp evaluates them at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.protocol import RESPONSE, SILENCE

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


# ---------------------------------------------------------------------------------------------------------
# The live context a backend implements


class LiveContext(Protocol):
    """One live token sequence of a loaded model, appended to at the end and rolled back from the end.

    ``len(ctx)`` counts the tokens (KV cells) it holds; queued tokens are not counted until evaluated.
    """

    seq_id: int  # which of the model's live sequences this is
    n_ctx: int  # the most tokens it may hold
    image_marker: str  # where ``append`` puts the image in its text ("" when it takes no images)
    banned: Sequence[int]  # token ids a decision must never contain (e.g. image placeholders)

    def __len__(self) -> int: ...

    def reset(self) -> None:
        """Empty: the chunk reset."""

    def append(self, text: str, pixels: np.ndarray | None = None) -> None:
        """Evaluate ``text`` (queued tokens first; the frame [h, w, 3] at ``image_marker``) at the end."""

    def eval_tokens(self, tokens: Sequence[int]) -> None:
        """Evaluate token ids at the end; ``logits()`` is then the distribution after the last one."""

    def logits(self) -> np.ndarray:
        """Next-token logits [V] float32 after the last evaluated token (the caller may modify it)."""

    def rollback(self, n: int) -> None:
        """Keep only the first ``n`` tokens."""

    def queue(self, tokens: Sequence[int]) -> None:
        """Tokens that follow what is held, evaluated now or with the next ``append``."""

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``, special tokens parsed, no BOS."""

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` (special tokens as their text; an incomplete character as U+FFFD)."""

    def is_stop(self, token: int) -> bool:
        """True for end-of-turn / end-of-generation tokens."""


# ---------------------------------------------------------------------------------------------------------
# Sampling: JoyAI's defaults, seeded


@dataclass
class Sampling:
    """How a decision token is drawn. Defaults are JoyAI's: temperature 0.8, top-p 0.9, top-k 40, no
    repetition penalty. ``greedy`` (or temperature 0) takes the argmax; ``seed`` makes runs repeatable."""

    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    greedy: bool = False
    seed: int = 0


def sample(logits: np.ndarray, s: Sampling, rng: np.random.Generator) -> int:
    """One token id from ``logits`` [V] float32: greedy, or temperature + top-k + top-p."""
    if s.greedy or s.temperature <= 0:
        return int(np.argmax(logits))
    n = logits.shape[0]
    k = min(s.top_k, n) if s.top_k > 0 else n
    idx = np.argpartition(logits, n - k)[n - k:]  # [k] the k best, unordered: O(V), no sort, no negated copy
    idx = idx[np.argsort(-logits[idx], kind="stable")]  # [k] best first
    z = logits[idx].astype(np.float64) / s.temperature  # [k]
    p = np.exp(z - z.max())
    p /= p.sum()
    if 0 < s.top_p < 1:
        keep = int(np.searchsorted(np.cumsum(p), s.top_p) + 1)  # smallest prefix with mass >= top_p
        p = p[:keep] / p[:keep].sum()
        idx = idx[:keep]
    return int(idx[rng.choice(len(idx), p=p)])


# ---------------------------------------------------------------------------------------------------------
# The silence bias (talkativeness)


@dataclass(frozen=True)
class SilenceBias:
    """A logit bias on the silence marker, defined once.

    ``path`` = the silence marker's tokens; ``fork`` = the index where they part from the response
    marker's (0 when both are single special tokens; after a shared ``</`` when they are plain text).
    Only while the decision so far follows the path:

    * a negative bias goes on ``path[fork]`` alone: it shifts exactly the silence-vs-response choice
      (pushing the shared ``</`` down would suppress responses too);
    * a positive bias goes on every token of the path: the marker is started even by a model about to
      write something else, taken at the fork, and finished rather than abandoned.
    """

    path: tuple[int, ...]
    fork: int
    bias: float = 0.0

    @classmethod
    def of(cls, tokenize: Callable[[str], list[int]], bias: float) -> SilenceBias:
        sil, resp = tokenize(SILENCE), tokenize(RESPONSE)
        return cls(tuple(sil), common_prefix(sil, resp), float(bias))

    def apply(self, logits: np.ndarray, sofar: Sequence[int]) -> None:
        """Add the bias to ``logits`` [V] in place, given the decision tokens sampled so far."""
        step = len(sofar)
        if not self.bias or step >= len(self.path) or (self.bias < 0 and step != self.fork):
            return
        if tuple(sofar) == self.path[:step]:
            logits[self.path[step]] += self.bias


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# ---------------------------------------------------------------------------------------------------------
# The stop rule


def decision_line(text: str) -> tuple[str, bool]:
    """(the decision so far, whether its line has ended) for raw model output ``text``.

    Leading blank lines are not the decision's line. A leading ``<think>…</think>`` block may span lines
    (``normalize`` strips it): the line that counts is the first one after it, so the block stays in the
    text and the decision ends at the first newline after it. Every backend stops by this rule.
    """
    body = text.lstrip()
    start = 0
    if body.startswith(THINK_OPEN):
        close = body.find(THINK_CLOSE)
        if close < 0:
            return body, False
        start = close + len(THINK_CLOSE)
        while start < len(body) and body[start].isspace():
            start += 1
        if start >= len(body):
            return body, False
    end = body.find("\n", start)
    return (body, False) if end < 0 else (body[:end], True)


# ---------------------------------------------------------------------------------------------------------
# The decoder


@dataclass
class _Draft:
    start: int  # len(ctx) when the decision began
    fed: list[int] = field(default_factory=list)  # decision tokens evaluated into the context so far


class DecisionDecoder:
    """Samples decisions on live contexts of one model and commits them. Not thread-safe (one engine
    thread drives it); several contexts may be open at once, keyed by ``seq_id``."""

    def __init__(self, sampling: Sampling, bias: SilenceBias):
        self.sampling, self.bias = sampling, bias
        self._rngs: dict[int, np.random.Generator] = {}
        self._drafts: dict[int, _Draft] = {}

    @classmethod
    def for_context(cls, ctx: LiveContext, sampling: Sampling, silence_bias: float = 0.0) -> DecisionDecoder:
        return cls(sampling, SilenceBias.of(ctx.tokenize, silence_bias))

    def _rng(self, seq_id: int) -> np.random.Generator:
        if seq_id not in self._rngs:  # one stream per sequence: a context's draws do not depend on others'
            seed = self.sampling.seed if seq_id == 0 else (self.sampling.seed, seq_id)
            self._rngs[seq_id] = np.random.default_rng(seed)
        return self._rngs[seq_id]

    def reset(self, ctx: LiveContext) -> None:
        """Forget ``ctx``'s open decision (call after ``ctx.reset()``)."""
        self._drafts.pop(ctx.seq_id, None)

    def decide(self, ctx: LiveContext, max_tokens: int = 128) -> Iterator[str]:
        """Sample one decision on ``ctx``; yields its text in whole characters, ending at the line's end.

        The last sampled token is never evaluated (no forward is spent on a token nobody reads): the
        context holds the decision's tokens but the last, and ``commit`` fixes up the rest.
        """
        draft = self._drafts[ctx.seq_id] = _Draft(start=len(ctx))
        rng = self._rng(ctx.seq_id)
        banned = np.asarray(list(ctx.banned), dtype=np.int64)
        sampled: list[int] = []
        shown = ""
        logits = ctx.logits()  # [V]
        for step in range(max(0, int(max_tokens))):
            if banned.size:
                logits[banned] = -math.inf
            self.bias.apply(logits, sampled)
            tok = sample(logits, self.sampling, rng)
            if ctx.is_stop(tok):
                break
            sampled.append(tok)
            line, done = decision_line(ctx.detokenize(sampled))
            if not done and line.endswith("\ufffd"):  # half a character: wait for the rest of its bytes
                line = line[:-1]
            if len(line) > len(shown):
                yield line[len(shown):]
                shown = line
            if done or step == max_tokens - 1 or len(ctx) + 1 >= ctx.n_ctx:
                break
            ctx.eval_tokens([tok])
            draft.fed.append(tok)
            logits = ctx.logits()

    def commit(self, ctx: LiveContext, target: Sequence[int]) -> list[int]:
        """Roll ``ctx`` back so it holds the decision's first tokens that equal ``target``'s (the
        normalised decision, closing tokens included); returns the rest of ``target``, to be evaluated
        (``ctx.queue``). Without an open decision nothing is rolled back and all of ``target`` returns."""
        draft = self._drafts.pop(ctx.seq_id, None)
        if draft is None:
            return list(target)
        keep = common_prefix(draft.fed, target)
        ctx.rollback(draft.start + keep)
        return list(target[keep:])

    def drop(self, ctx: LiveContext) -> None:
        """Undo an open decision entirely (``decide`` ran, ``commit`` never came)."""
        draft = self._drafts.pop(ctx.seq_id, None)
        if draft is not None:
            ctx.rollback(draft.start)

    def is_open(self, ctx: LiveContext) -> bool:
        return ctx.seq_id in self._drafts
