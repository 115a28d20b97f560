"""The ``llamacpp`` backend: a GGUF (+ mmproj) through llama-cpp-python, one live sequence per stream.

Per tick it evaluates only the new turn (notes, query header, time marker, the frame) at the
current position; ``decoding.DecisionDecoder`` samples the decision on the same sequence (a
``GgufContext``) until the end of the line and, at ``commit``, rolls it back to the longest common
prefix with the normalised decision and evaluates the rest. ``start_chunk`` clears the cache and evaluates system + chunk prefix. KV cache
``auto`` by default: ``q8_0`` with flash attention on a GPU, ``f16`` without it on a CPU, where it is
2-4x faster per token at long contexts (see ``gguf_sequence.AUTO_KV``); ``q8_0``, ``q4_0``, ``f16``
can be chosen (flash attention is switched on whenever V is quantized); every layer on the GPU when
the build has one. A turn that would not fit in ``n_ctx``
is refused with one clear line and leaves the context as it was.

Several streams (engine/streams.py): ``for_streams(n)`` gives one backend per stream on this loaded
model, each on its own llama.cpp sequence id of one context (the weights are loaded once); their ticks
run one after another.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator

import numpy as np

from engine.backends.base import Backend, BackendConfig, BackendError, BackendStats, ModelLoadError
from engine.backends.chat_layout import template_layout
from engine.backends.decoding import DecisionDecoder, Sampling
from engine.backends.gguf_context import GgufContext
from engine.backends.gguf_layout import CHATML, PLAIN, Layout
from engine.backends.gguf_sequence import LiveSequence, Piece, find_mmproj
from engine.context import ChunkPrefix, Turn

log = logging.getLogger(__name__)
DECISION_RESERVE = 128  # cells kept free for the decision when checking that a turn fits


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(self) -> None:
        self.seq: LiveSequence | None = None
        self.ctx: GgufContext | None = None
        self.decoder: DecisionDecoder | None = None
        self.layout: Layout = CHATML
        self._first_in_chunk = True
        self._new_cells = 0
        self._reserve = DECISION_RESERVE
        self._prefix = ChunkPrefix(system="", text="")
        self._prefix_cells = 0

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
        opts = config.llamacpp
        mmproj = config.mmproj or ("" if opts.text_only else find_mmproj(config.model))
        self.seq = LiveSequence(
            config.model, mmproj=mmproj, n_ctx=config.n_ctx, kv_type=config.kv_type,
            n_gpu_layers=None if opts.n_gpu_layers < 0 else opts.n_gpu_layers, n_threads=opts.n_threads or None,
            n_batch=opts.n_batch, flash_attn=opts.flash_attn, seed=config.seed,
        )
        self.wants_frames = self.seq.mtmd is not None
        self.layout = template_layout(self.seq.llama.metadata.get("tokenizer.chat_template"), config.model,
                                      CHATML if self.seq.has_token("<|im_start|>") else PLAIN)
        self._reserve = opts.decision_reserve or DECISION_RESERVE
        self.ctx = GgufContext(self.seq)
        self.decoder = DecisionDecoder.for_context(
            self.ctx, Sampling(config.temperature, config.top_p, config.top_k, config.greedy, config.seed),
            config.silence_bias)

    def for_streams(self, n: int) -> list[LlamaCppBackend]:
        """``n`` backends on this model, stream ``i`` on llama.cpp sequence ``i``, each with ``n_ctx`` cells.
        Call before any stream starts: the context is rebuilt with room for them (not the weights)."""
        model = self._need().model
        model.hold_sequences(n)
        self.seq.n_past = self.seq.n_cells = 0  # the rebuilt context holds nothing yet
        self.seq.history.clear()
        views = []
        for i in range(n):
            view = LlamaCppBackend()
            view.seq = LiveSequence(model, seq_id=i)
            view.ctx = GgufContext(view.seq)
            view.decoder = DecisionDecoder(self.decoder.sampling, self.decoder.bias)
            view.wants_frames, view.layout, view._reserve = self.wants_frames, self.layout, self._reserve
            views.append(view)
        return views

    def _need(self) -> LiveSequence:
        if self.seq is None:
            raise BackendError("the llamacpp backend is not loaded")
        return self.seq

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self._need()
        ctx = self.ctx
        ctx.reset()
        self.decoder.reset(ctx)
        self._prefix = prefix
        pieces = ctx.plan(self.layout.chunk_start(prefix.system, prefix.text))
        self._check_fits(pieces, what="the chunk prefix (system prompt + memory)")
        ctx.append("", pieces=pieces)
        self._prefix_cells = self.seq.n_cells  # what a restart from this prefix keeps
        self._first_in_chunk = True

    def observe(self, turn: Turn) -> None:
        seq = self._need()
        if self.decoder.is_open(self.ctx):  # decide() ran without commit(): drop what it left
            self.decoder.drop(self.ctx)
        pieces = self._plan_turn(turn, self._first_in_chunk)
        if not self._fits(pieces):
            what = f"the turn at {turn.t}s"
            if self._first_in_chunk:
                self._check_fits(pieces, what)  # right after the prefix: too big for the window, one clear error
            # A small window (a tiny VLM's 1,024 cells) filled before the chunk's boundary: restart the
            # context from this chunk's prefix now and place this turn after it, so no second is lost;
            # the chunk's earlier raw turns leave the window, its prefix (system + memory) stays.
            first = self._plan_turn(turn, first_in_chunk=True)
            self._check_fits(first, what, used=self._prefix_cells)  # too big even then: nothing touched
            log.warning("llamacpp: context full at %ss; restarting the context from the chunk prefix", turn.t)
            self.start_chunk(self._prefix)
            pieces = first
        before = seq.n_cells
        self.ctx.append("", pieces=pieces)
        self._new_cells = seq.n_cells - before
        self._first_in_chunk = False

    def _plan_turn(self, turn: Turn, first_in_chunk: bool):
        seq = self._need()
        pixels = turn.pixels if seq.mtmd is not None else None
        text = self.layout.turn(turn.text_before_image(), seq.marker if pixels is not None else None, first_in_chunk)
        return self.ctx.plan(text, pixels)

    def _fits(self, pieces, used: int | None = None) -> bool:
        seq = self._need()
        used = seq.n_cells if used is None else used
        return used + seq.cells_needed(pieces) + self._reserve <= seq.n_ctx

    def _check_fits(self, pieces, what: str, used: int | None = None) -> None:
        if self._fits(pieces, used):
            return
        seq = self._need()
        need, used = seq.cells_needed(pieces), seq.n_cells if used is None else used
        raise BackendError(
            f"context full: {what} needs {need} tokens, {used} are in use and {self._reserve} are kept "
            f"for the decision, but n_ctx is {seq.n_ctx}; raise backend.n_ctx or shorten the chunk "
            f"(memory.chunk_ticks) or lower capture max_pixels")

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        self._need()
        yield from self.decoder.decide(self.ctx, max_tokens)

    def commit(self, text: str) -> None:
        """Leave the cache holding exactly ``text`` as this tick's assistant turn."""
        self._need()
        target = self.ctx.tokenize(self.layout.decision(text.strip()))
        self.ctx.queue(self.decoder.commit(self.ctx, target))
        self._new_cells += len(target)

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
                merged[-1] = Piece("text", (merged[-1].tokens or []) + (p.tokens or []))
            elif p.kind == "text":
                merged.append(Piece("text", list(p.tokens or [])))
            else:
                merged.append(p)
        t0 = time.perf_counter()
        seq.eval([p for p in merged if p.kind != "text" or p.tokens])
        self.replay_s = time.perf_counter() - t0
        return seq.logits()
