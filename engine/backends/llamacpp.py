"""The ``llamacpp`` backend: a GGUF (+ mmproj) through llama-cpp-python, one live sequence.

Per tick it evaluates only the new turn (notes, query header, time marker, the frame) at the
current position, samples the decision with JoyAI's defaults until the end of the line, then rolls
the sequence back to where the decision began and leaves exactly the normalised decision
(``commit``). ``start_chunk`` clears the cache and evaluates system + chunk prefix. KV cache
``auto`` by default: ``q8_0`` with flash attention on a GPU, ``f16`` without it on a CPU, where it is
2-4x faster per token at long contexts (see ``gguf_sequence.AUTO_KV``); ``q8_0``, ``q4_0``, ``f16``
can be chosen (flash attention is switched on whenever V is quantized); every layer on the GPU when
the build has one. A turn that would not fit in ``n_ctx``
is refused with one clear line and leaves the context as it was.
"""

from __future__ import annotations

import codecs
import importlib.util
import logging
import time
from collections.abc import Iterator

import numpy as np

from engine.backends.base import Backend, BackendConfig, BackendError, BackendStats, ModelLoadError
from engine.backends.gguf_layout import CHATML, PLAIN, Layout
from engine.backends.gguf_sampling import SamplingOptions, sample
from engine.backends.gguf_sequence import LiveSequence, find_mmproj
from engine.context import ChunkPrefix, Turn
from engine.protocol import RESPONSE, SILENCE

log = logging.getLogger(__name__)
DECISION_RESERVE = 128  # cells kept free for the decision when checking that a turn fits


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(self) -> None:
        self.seq: LiveSequence | None = None
        self.layout: Layout = CHATML
        self.sampling = SamplingOptions()
        self.silence_bias = 0.0
        self._rng = np.random.default_rng(0)
        self._first_in_chunk = True
        self._mark: tuple[int, int, int] | None = None  # (n_past, n_cells, len(history)) before the decision
        self._sampled: list[int] = []  # decision tokens now in the cache (beyond the mark)
        self._new_cells = 0
        self._silence_path: list[int] = []  # tokens of "</silence>"
        self._branch = 0  # index where "</silence>" and "</response>" tokenizations first differ
        self._reserve = DECISION_RESERVE
        self._prefix = ChunkPrefix(system="", text="")
        self._overflowed = False

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return False, "llama-cpp-python is not installed: install presence[llm]"
        return True, ""

    # --- lifecycle ------------------------------------------------------------------------------
    def load(self, config: BackendConfig) -> None:
        ok, hint = self.is_available()
        if not ok:
            raise ModelLoadError(hint)
        opts = dict(config.options.get("llamacpp", {}))
        mmproj = config.mmproj or ("" if opts.get("text_only") else find_mmproj(config.model))
        self.seq = LiveSequence(
            config.model, mmproj=mmproj, n_ctx=config.n_ctx, kv_type=config.kv_type,
            n_gpu_layers=opts.get("n_gpu_layers"), n_threads=opts.get("n_threads"),
            n_batch=int(opts.get("n_batch", 512)), flash_attn=opts.get("flash_attn"), seed=config.seed,
        )
        self.wants_frames = self.seq.mtmd is not None
        self.layout = CHATML if self.seq.has_token("<|im_start|>") else PLAIN
        self.sampling = SamplingOptions(config.temperature, config.top_p, config.top_k, config.greedy)
        self.silence_bias = config.silence_bias
        self._rng = np.random.default_rng(config.seed)
        self._reserve = int(opts.get("decision_reserve", DECISION_RESERVE))
        sil, resp = self.seq.tokenize(SILENCE), self.seq.tokenize(RESPONSE)
        self._silence_path = sil
        self._branch = next((i for i, (a, b) in enumerate(zip(sil, resp, strict=False)) if a != b), min(len(sil), len(resp)))

    def _need(self) -> LiveSequence:
        if self.seq is None:
            raise BackendError("the llamacpp backend is not loaded")
        return self.seq

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        seq = self._need()
        seq.clear()
        self._mark, self._sampled = None, []
        self._prefix = prefix
        pieces = seq.plan(self.layout.chunk_start(prefix.system, prefix.text), None, add_bos=True)
        self._check_fits(pieces, what="the chunk prefix (system prompt + memory)")
        seq.eval(pieces)
        self._first_in_chunk = True
        self._overflowed = False

    def observe(self, turn: Turn) -> None:
        seq = self._need()
        if self._mark is not None:  # decide() ran without commit(): drop what it left
            self._drop_decision()
        if self._overflowed:
            # The last turn did not fit and was refused (one error logged). Rather than refuse every
            # second until the chunk ends, restart the context from this chunk's prefix.
            log.warning("llamacpp: context full; restarting the context from the chunk prefix")
            self.start_chunk(self._prefix)
        pixels = turn.pixels if seq.mtmd is not None else None
        text = self.layout.turn(turn.text_before_image(), seq.marker if pixels is not None else None,
                                self._first_in_chunk)
        pieces = seq.plan(text, pixels)
        try:
            self._check_fits(pieces, what=f"the turn at {turn.t}s")
        except BackendError:
            self._overflowed = True
            raise
        before = seq.n_cells
        seq.eval(pieces)
        self._new_cells = seq.n_cells - before
        self._first_in_chunk = False

    def _check_fits(self, pieces, what: str) -> None:
        seq = self._need()
        need = seq.cells_needed(pieces)
        if seq.n_cells + need + self._reserve > seq.n_ctx:
            raise BackendError(
                f"context full: {what} needs {need} tokens, {seq.n_cells} are in use and {self._reserve} are kept "
                f"for the decision, but n_ctx is {seq.n_ctx}; raise backend.n_ctx or shorten the chunk "
                f"(memory.chunk_ticks) or lower capture max_pixels")

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        seq = self._need()
        self._mark = (seq.n_past, seq.n_cells, len(seq.history))
        self._sampled = []
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = shown = ""
        logits = seq.logits()
        for i in range(max_tokens):
            if self.silence_bias:
                self._bias_silence(logits, i)
            tok = sample(logits, self.sampling, self._rng)
            if seq.is_eog(tok):
                break
            text += dec.decode(seq.piece(tok))
            body = text.lstrip()  # leading blank lines are not the decision's line
            end = _line_end(body)
            if end >= 0:  # the decision is one line: stop at its end
                if end > len(shown):
                    yield body[len(shown):end]
                break
            if len(body) > len(shown):
                yield body[len(shown):]
                shown = body
            if seq.n_cells + 1 >= seq.n_ctx or i == max_tokens - 1:
                break
            seq.decode_one(tok)
            self._sampled.append(tok)
            logits = seq.logits()

    def _bias_silence(self, logits: np.ndarray, step: int) -> None:
        """Talkativeness' logit bias on the silence marker. In a vocabulary where the markers are
        plain text they share a first token ("</"), so the bias goes on the token where silence and
        response part ways; a positive bias also goes on every other token of the silence marker (so a
        started marker is finished), only while the output still follows that path."""
        path = self._silence_path
        if step >= len(path) or self._sampled[:step] != path[:step]:
            return
        if step == self._branch or self.silence_bias > 0:
            logits[path[step]] += self.silence_bias

    def commit(self, text: str) -> None:
        """Leave the cache holding exactly ``text`` as this tick's assistant turn."""
        seq = self._need()
        if self._mark is None:  # commit without decide: append the text after the turn
            self._mark = (seq.n_past, seq.n_cells, len(seq.history))
            self._sampled = []
        target = seq.tokenize(self.layout.decision(text))
        keep = 0  # sampled tokens that already equal the start of the target stay in the cache
        while keep < len(self._sampled) and keep < len(target) and self._sampled[keep] == target[keep]:
            keep += 1
        n_past, n_cells, n_hist = self._mark
        seq.rollback(n_past + keep, n_cells + keep, n_hist)
        seq.history.append(_text_piece(target[:keep]))
        seq.eval([_text_piece(target[keep:])])
        self._new_cells += len(target)
        self._mark, self._sampled = None, []

    def _drop_decision(self) -> None:
        n_past, n_cells, n_hist = self._mark  # type: ignore[misc]
        self._need().rollback(n_past, n_cells, n_hist)
        self._mark, self._sampled = None, []

    def stats(self) -> BackendStats:
        seq = self.seq
        if seq is None:
            return BackendStats()
        kv = seq.kv_bytes()
        return BackendStats(tokens_context=seq.n_cells, tokens_new=self._new_cells,
                            kv_bytes_fast=kv, kv_bytes_offload=0)

    def close(self) -> None:
        if self.seq is not None:
            self.seq.close()
            self.seq = None

    # --- for tests and benchmarks ---------------------------------------------------------------
    def logits(self) -> np.ndarray:
        """The next-token logits [n_vocab] of the live sequence."""
        return self._need().logits()

    def replay(self, history) -> np.ndarray:
        """Clear, evaluate ``history`` (consecutive text merged into one batch) and return the logits."""
        seq = self._need()
        seq.clear()
        merged: list = []
        for p in history:
            if p.kind == "text" and merged and merged[-1].kind == "text":
                merged[-1] = _text_piece((merged[-1].tokens or []) + (p.tokens or []))
            elif p.kind == "text":
                merged.append(_text_piece(list(p.tokens or [])))
            else:
                merged.append(p)
        t0 = time.perf_counter()
        seq.eval([p for p in merged if p.kind != "text" or p.tokens])
        self.replay_s = time.perf_counter() - t0
        return seq.logits()


def _line_end(body: str) -> int:
    """Where the decision's line ends in ``body`` (-1: not yet). A leading ``<think>…</think>``
    block may span lines (normalize strips it); the line that counts is the first one after it."""
    start = 0
    if body.startswith("<think>"):
        close = body.find("</think>")
        if close < 0:
            return -1
        start = close + len("</think>")
        while start < len(body) and body[start].isspace():
            start += 1
        if start >= len(body):
            return -1
    return body.find("\n", start)


def _text_piece(tokens: list[int]):
    from engine.backends.gguf_sequence import Piece

    return Piece("text", list(tokens))
