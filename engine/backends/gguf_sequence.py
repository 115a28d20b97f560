"""Live llama.cpp sequences with images: evaluate new text and frames at the current position, roll
back to a position, clear, and read the next-token logits.

Below llama-cpp-python's chat handlers on purpose: every handler call clears the KV cache and
re-evaluates the whole conversation (tailorkv.md §4.4). Here text goes through our own
``llama_batch`` and images through libmtmd's ``mtmd_helper_eval_chunk_single``, both on the
sequence's id at ``n_past``. Two counters, because M-RoPE images advance the position less than they
fill cells: ``n_past`` (the next position, from the helper's ``new_n_past``) and ``n_cells`` (KV cells
in use, what ``n_ctx`` bounds). ``history`` records exactly what the cache holds, so a fresh context
can replay it (the incremental-vs-fresh logits test).

``GgufModel`` is the loaded weights (+ mmproj) and one ``llama_context``; each ``LiveSequence`` is one
llama.cpp sequence id in it. Several streams share one model: ``GgufModel.hold_sequences(n)`` rebuilds
the context (not the weights) with ``n`` sequences of ``n_ctx`` cells each (a KV stream per sequence,
``kv_unified`` off, so attention reads only its own cells). Sequences are evaluated one after another
(each call decodes one sequence's tokens); batching several streams' tokens into one ``llama_decode`` is
not done, because a stream's tick is served whole by the scheduler (engine/streams.py) and libmtmd
evaluates one sequence's image per call.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.backends.base import BackendError, ModelLoadError
from engine.kv.sizes import GGML_AUTO_GPU
from engine.kv.sizes import (
    GGML_KV as KV_TYPES,  # ggml type id and bytes per value, shared with the VRAM estimate
)

# "auto": the KV type per device. On a CPU build, f16 without flash attention: ggml's CPU attention
# over an f16 cache is plain matmuls, while a quantized cache needs flash attention, whose CPU kernel
# dequantises every V row per query token; measured with SmolLM2-135M, one decoded token at 8192 cells
# costs 46 ms (f16) vs 98 ms (q8_0) vs 182 ms (q4_0), 13-15 ms at 256 cells for all (a one-off
# micro-benchmark; benchmarks/tick_latency_gguf.py prints the per-token growth of the chosen type).
# On a GPU, q8_0 + flash attention: half the memory of f16.
AUTO_KV = {"cpu": "f16", "gpu": GGML_AUTO_GPU}


def resolve_kv_type(kv_type: str, gpu: bool) -> str:
    """The concrete KV type for ``kv_type`` ("auto" picks per device; others pass through)."""
    return AUTO_KV["gpu" if gpu else "cpu"] if kv_type in ("auto", "") else kv_type


@dataclass
class Piece:
    """What one evaluation put in the cache: text tokens, or one image (its RGB pixels [h, w, 3])."""

    kind: str  # "text" | "image"
    tokens: list[int] | None = None
    pixels: np.ndarray | None = None
    part: int = 0  # which image chunk of the frame: a sliced frame (SmolVLM2: tiles + overview) has several


def find_mmproj(model: str) -> str:
    """An mmproj GGUF beside ``model`` (the one sharing the longest name prefix), or ''."""
    p = Path(model)
    if not p.parent.is_dir():
        return ""
    cands = [c for c in p.parent.glob("*.gguf") if "mmproj" in c.name.lower() and c != p]
    if not cands:
        return ""

    def shared(c: Path) -> int:
        return len(os.path.commonprefix([c.name.lower(), p.name.lower()]))

    return str(max(cands, key=lambda c: (shared(c), -len(c.name))))


class GgufModel:
    """A loaded GGUF (+ optional mmproj) and its llama_context, which holds one or more sequences."""

    def __init__(self, model: str, mmproj: str = "", n_ctx: int = 8192, kv_type: str = "auto",
                 n_gpu_layers: int | None = None, n_threads: int | None = None, n_batch: int = 512,
                 flash_attn: bool | None = None, seed: int = 0):
        import llama_cpp

        self._lc = llama_cpp
        if not model or not Path(model).is_file():
            raise ModelLoadError(f"GGUF model not found: {model or '(none given)'}")
        self.gpu = bool(llama_cpp.llama_supports_gpu_offload())
        kv_type = resolve_kv_type(kv_type, self.gpu and n_gpu_layers != 0)
        if kv_type not in KV_TYPES:
            raise ModelLoadError(f"unknown KV cache type {kv_type!r}; choose auto or one of {', '.join(KV_TYPES)}")
        ggml_type, self._kv_bytes_per_value = KV_TYPES[kv_type]
        quantized_v = kv_type not in ("f16", "f32")
        # llama.cpp refuses a quantized V cache without flash attention (V is stored transposed otherwise).
        fa = quantized_v if flash_attn is None else (flash_attn or quantized_v)
        if n_gpu_layers is None:
            n_gpu_layers = -1 if self.gpu else 0
        self.n_batch = n_batch
        self.kv_type, self.note = kv_type, ""

        def make(gtype: int, fa_on: bool):
            return llama_cpp.Llama(
                model_path=model, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch, n_gpu_layers=n_gpu_layers,
                n_threads=n_threads, n_threads_batch=n_threads, type_k=gtype, type_v=gtype,
                flash_attn=fa_on, seed=seed, verbose=False,
            )

        try:
            self.llama = make(ggml_type, fa)
        except Exception as exc:  # llama.cpp reports failures as ValueError with no detail
            if not quantized_v:
                raise ModelLoadError(f"llama.cpp could not load {model} (n_ctx={n_ctx}): {exc}") from exc
            # A head size not divisible by the quant block (32) cannot hold a quantized KV: use f16.
            try:
                self.llama = make(KV_TYPES["f16"][0], bool(flash_attn))
            except Exception as exc2:
                raise ModelLoadError(f"llama.cpp could not load {model} (n_ctx={n_ctx}): {exc2}") from exc2
            fa = bool(flash_attn)
            self.kv_type, self._kv_bytes_per_value = "f16", KV_TYPES["f16"][1]
            self.note = f"KV cache {kv_type} is not possible for this model (head size vs block of 32); using f16"
            logging.getLogger(__name__).warning(self.note)
        self.ctx = self.llama._ctx.ctx
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx = int(self.llama.n_ctx())
        self._mem = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.n_seq = 1  # sequences the context holds
        self.closed = False
        self.last_seq = -1  # the sequence whose logits llama.cpp holds now
        self.mtmd = None
        self.mmproj = mmproj
        self.marker = ""
        if mmproj:
            self._init_mtmd(mmproj, fa, n_threads)
        self._kv_row_values = self._kv_values_per_cell()

    # --- setup ----------------------------------------------------------------------------------
    def _init_mtmd(self, mmproj: str, fa: bool, n_threads: int | None) -> None:
        import llama_cpp.mtmd_cpp as mtmd

        if not Path(mmproj).is_file():
            raise ModelLoadError(f"mmproj file not found: {mmproj}")
        # libmtmd logs every image at INFO on stderr; route it through llama-cpp-python's logger,
        # which prints only errors unless verbose.
        from llama_cpp._logger import llama_log_callback

        mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = self.gpu
        params.print_timings = False
        params.n_threads = n_threads or self.llama.n_threads
        params.flash_attn_type = (self._lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if fa
                                  else self._lc.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        ctx = mtmd.mtmd_init_from_file(mmproj.encode(), self.llama.model, params)
        if not ctx:
            raise ModelLoadError(
                f"this llama.cpp build (llama-cpp-python {self._lc.__version__}) cannot load the projector "
                f"{Path(mmproj).name} for {Path(self.llama.model_path).name}; the architecture may need a newer "
                "llama-cpp-python")
        if not mtmd.mtmd_support_vision(ctx):
            mtmd.mtmd_free(ctx)
            raise ModelLoadError(f"{Path(mmproj).name} is not a vision projector")
        self._mtmd_mod = mtmd
        self.mtmd = ctx
        self.marker = mtmd.mtmd_default_marker().decode()

    def _kv_values_per_cell(self) -> int:
        lc, m = self._lc, self.llama.model
        n_layer = lc.llama_model_n_layer(m)
        n_head, n_head_kv, n_embd = lc.llama_model_n_head(m), lc.llama_model_n_head_kv(m), lc.llama_model_n_embd(m)
        md = self.llama.metadata
        arch = md.get("general.architecture", "")
        k_len = int(md.get(f"{arch}.attention.key_length", n_embd // max(n_head, 1)))
        v_len = int(md.get(f"{arch}.attention.value_length", k_len))
        return n_layer * n_head_kv * (k_len + v_len)

    def kv_bytes(self, cells: int) -> int:
        return int(cells * self._kv_row_values * self._kv_bytes_per_value)

    def hold_sequences(self, n: int) -> None:
        """Rebuild the context (the weights stay loaded) to hold ``n`` sequences of ``n_ctx`` cells each.
        Whatever the sequences held is gone: call it before any of them is used."""
        if n <= self.n_seq:
            return
        lc = self._lc
        from llama_cpp._internals import LlamaContext

        params = lc.llama_context_params.from_buffer_copy(self.llama.context_params)
        params.n_seq_max, params.n_ctx, params.kv_unified = n, n * self.n_ctx, False
        try:
            fresh = LlamaContext(model=self.llama._model, params=params, verbose=False)
        except Exception as exc:  # llama.cpp says ValueError with no detail (out of memory, most likely)
            raise BackendError(f"llama.cpp could not make room for {n} streams of {self.n_ctx} tokens: {exc}") from exc
        self.llama._ctx.close()
        self.llama._ctx = fresh
        self.ctx, self._mem = fresh.ctx, lc.llama_get_memory(fresh.ctx)
        self.n_seq, self.last_seq = n, -1

    # --- tokens ---------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.llama._model.tokenize(text.encode("utf-8"), add_bos, True) if text else []

    def piece(self, token: int) -> bytes:
        """The token's bytes (special tokens as their text, so ``</silence>`` reads as itself)."""
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self.vocab, token, buf, 64, 0, True)
        if n < 0:  # longer than the buffer: ask again with the size llama.cpp reported
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, True)
        return buf.raw[:max(n, 0)]

    def is_eog(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self.vocab, token))

    def has_token(self, text: str) -> bool:
        return len(self.tokenize(text)) == 1

    # --- evaluation -----------------------------------------------------------------------------
    def plan(self, text: str, pixels: np.ndarray | None, add_bos: bool = False) -> list[Piece]:
        """Tokenize ``text`` (with ``self.marker`` where the image goes) into pieces; evaluates nothing."""
        if pixels is None or self.mtmd is None:
            return [Piece("text", self.tokenize(text.replace(self.marker, "") if self.marker else text, add_bos))]
        pieces: list[Piece] = []
        for kind, tokens, _ in self._mtmd_chunks(text, pixels, add_bos):
            part = sum(p.kind == "image" for p in pieces)
            pieces.append(Piece("text", tokens) if kind == "text" else Piece("image", pixels=pixels, part=part))
        return pieces

    def cells_needed(self, pieces: list[Piece]) -> int:
        n = 0
        for p in pieces:
            n += len(p.tokens or []) if p.kind == "text" else self.image_tokens(p.pixels, p.part)
        return n

    def image_tokens(self, pixels: np.ndarray, part: int | None = None) -> int:
        """Cells a frame of this size fills: all its image chunks, or only chunk ``part``."""
        key = pixels.shape[:2]
        cache = self.__dict__.setdefault("_img_tok_cache", {})
        if key not in cache:
            cache[key] = [n for kind, _, n in self._mtmd_chunks(self.marker, pixels, False) if kind == "image"]
        return sum(cache[key]) if part is None else cache[key][part]

    def decode(self, seq_id: int, n_past: int, tokens: list[int]) -> None:
        """Evaluate ``tokens`` on sequence ``seq_id`` from position ``n_past``; logits after the last one."""
        b = self._batch
        for start in range(0, len(tokens), self.n_batch):
            part = tokens[start:start + self.n_batch]
            b.n_tokens = len(part)
            for i, tok in enumerate(part):
                b.token[i] = tok
                b.pos[i] = n_past + start + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = seq_id
                b.logits[i] = False
            b.logits[len(part) - 1] = True  # only the last row's logits are ever read
            rc = self._lc.llama_decode(self.ctx, b)
            if rc != 0:
                raise BackendError(f"llama_decode failed (code {rc}) at position {n_past + start}")
        if tokens:
            self.last_seq = seq_id

    def _mtmd_chunks(self, text: str, pixels: np.ndarray, add_bos: bool):
        """Yield (kind, tokens, n_tokens) for ``text`` with one image; frees everything it makes."""
        yield from self._with_chunks(text, pixels, add_bos)

    def _with_chunks(self, text: str, pixels: np.ndarray, add_bos: bool, on_image=None) -> list[tuple]:
        """Tokenize ``text`` + one image with libmtmd; ``on_image(chunk, n_tokens)`` runs while the
        image chunk is alive (that is where it gets evaluated). Returns (kind, tokens, n_tokens)."""
        mt = self._mtmd_mod
        rgb = np.ascontiguousarray(pixels[..., :3], dtype=np.uint8)  # [h, w, 3]
        bitmap = mt.mtmd_bitmap_init(rgb.shape[1], rgb.shape[0], rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        if not bitmap:
            raise BackendError("could not make an image bitmap for the multimodal helper")
        chunks = mt.mtmd_input_chunks_init()
        try:
            inp = mt.mtmd_input_text()
            raw = text.encode("utf-8")
            inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_bos, True
            arr = (mt.mtmd_bitmap_p_ctypes * 1)(bitmap)
            rc = mt.mtmd_tokenize(self.mtmd, chunks, ctypes.byref(inp), arr, 1)
            if rc != 0:
                raise BackendError(f"the multimodal helper could not tokenize the frame (code {rc})")
            out = []
            for i in range(mt.mtmd_input_chunks_size(chunks)):
                chunk = mt.mtmd_input_chunks_get(chunks, i)
                ctype = mt.mtmd_input_chunk_get_type(chunk)
                if ctype == mt.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ptr = mt.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out.append(("text", [ptr[j] for j in range(n.value)], n.value))
                else:
                    n_tok = mt.mtmd_input_chunk_get_n_tokens(chunk)
                    if on_image is not None:
                        on_image(chunk, n_tok)
                    out.append(("image", None, n_tok))
            return out
        finally:
            mt.mtmd_input_chunks_free(chunks)
            mt.mtmd_bitmap_free(bitmap)

    def eval_image(self, seq_id: int, n_past: int, pixels: np.ndarray, part: int = 0) -> tuple[int, int]:
        """Evaluate image chunk ``part`` of one frame on sequence ``seq_id`` at ``n_past``; returns (the next
        position, cells used)."""
        if self.mtmd is None:
            raise BackendError("this model has no mmproj, so it cannot look at frames")
        mt = self._mtmd_mod
        out = [n_past, 0]
        seen = [0]

        def run(chunk, n_tok: int) -> None:
            seen[0] += 1
            if seen[0] - 1 != part:  # the frame's other chunks have pieces of their own
                return
            new_n_past = self._lc.llama_pos(0)
            rc = mt.mtmd_helper_eval_chunk_single(self.mtmd, self.ctx, chunk, n_past, seq_id, self.n_batch,
                                                  False, ctypes.byref(new_n_past))
            if rc != 0:
                raise BackendError(f"the multimodal helper failed to evaluate the frame (code {rc})")
            out[:] = [int(new_n_past.value), n_tok]  # M-RoPE: never compute the position, take the helper's

        # The marker alone: the surrounding vision start/end tokens come back as text chunks, which
        # ``plan`` already put into the neighbouring text pieces, so only the image chunk runs here.
        self._with_chunks(self.marker, pixels, False, on_image=run)
        return out[0], out[1]

    def logits(self, seq_id: int) -> np.ndarray:
        """The next-token logits [n_vocab] after sequence ``seq_id``'s last evaluated text token (a copy)."""
        if self.last_seq != seq_id:
            raise BackendError(f"llama.cpp holds the logits of sequence {self.last_seq}, not {seq_id}")
        ptr = self._lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def remove(self, seq_id: int, from_pos: int) -> None:
        """Drop sequence ``seq_id``'s cells at positions >= ``from_pos`` (0: all of them)."""
        if not self._lc.llama_memory_seq_rm(self._mem, seq_id, from_pos, -1):
            raise BackendError(f"llama.cpp could not roll sequence {seq_id} back to position {from_pos}")
        if self.last_seq == seq_id:
            self.last_seq = -1

    def close(self) -> None:
        self.closed = True
        if self._batch is not None:
            self._lc.llama_batch_free(self._batch)
            self._batch = None
        if self.mtmd is not None:
            self._mtmd_mod.mtmd_free(self.mtmd)
            self.mtmd = None
        self.llama.close()


class LiveSequence:
    """One live sequence (llama.cpp sequence ``seq_id``) of a ``GgufModel``. Given a path, it loads the
    model and is its sequence 0 (and closes it); given a loaded ``GgufModel``, it shares it."""

    def __init__(self, model: str | GgufModel, mmproj: str = "", n_ctx: int = 8192, kv_type: str = "auto",
                 n_gpu_layers: int | None = None, n_threads: int | None = None, n_batch: int = 512,
                 flash_attn: bool | None = None, seed: int = 0, seq_id: int = 0):
        self.owner = not isinstance(model, GgufModel)
        self.model = GgufModel(model, mmproj, n_ctx, kv_type, n_gpu_layers, n_threads, n_batch, flash_attn,
                               seed) if self.owner else model
        self.seq_id = seq_id
        self.n_past = 0
        self.n_cells = 0
        self.history: list[Piece] = []

    # what the loaded model says (one place; the backend and tests read them through the sequence)
    llama = property(lambda self: self.model.llama)
    mtmd = property(lambda self: self.model.mtmd)
    mmproj = property(lambda self: self.model.mmproj)
    marker = property(lambda self: self.model.marker)
    n_ctx = property(lambda self: self.model.n_ctx)
    kv_type = property(lambda self: self.model.kv_type)
    note = property(lambda self: self.model.note)
    gpu = property(lambda self: self.model.gpu)

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.model.tokenize(text, add_bos)

    def piece(self, token: int) -> bytes:
        return self.model.piece(token)

    def is_eog(self, token: int) -> bool:
        return self.model.is_eog(token)

    def has_token(self, text: str) -> bool:
        return self.model.has_token(text)

    def plan(self, text: str, pixels: np.ndarray | None, add_bos: bool = False) -> list[Piece]:
        return self.model.plan(text, pixels, add_bos)

    def cells_needed(self, pieces: list[Piece]) -> int:
        return self.model.cells_needed(pieces)

    def image_tokens(self, pixels: np.ndarray) -> int:
        return self.model.image_tokens(pixels)

    def kv_bytes(self) -> int:
        return self.model.kv_bytes(self.n_cells)

    # --- evaluation -----------------------------------------------------------------------------
    def eval(self, pieces: list[Piece]) -> None:
        """Evaluate ``pieces`` at the current position; logits are those after the last text token."""
        for p in pieces:
            if p.kind == "text":
                self._decode_tokens(p.tokens or [])
            else:
                self.n_past, n_tok = self.model.eval_image(self.seq_id, self.n_past, p.pixels, p.part)
                self.n_cells += n_tok
            self.history.append(p)

    def _decode_tokens(self, tokens: list[int]) -> None:
        self.model.decode(self.seq_id, self.n_past, tokens)
        self.n_past += len(tokens)
        self.n_cells += len(tokens)

    def logits(self) -> np.ndarray:
        """The next-token logits [n_vocab] after the last evaluated text token (a copy)."""
        return self.model.logits(self.seq_id)

    def decode_one(self, token: int) -> None:
        """Append one sampled token (not recorded in ``history``: ``rollback`` removes it)."""
        self._decode_tokens([token])

    # --- memory ops -----------------------------------------------------------------------------
    def rollback(self, n_past: int, n_cells: int, n_history: int) -> None:
        """Drop everything at positions ≥ ``n_past`` from this sequence."""
        if n_past < self.n_past:
            self.model.remove(self.seq_id, n_past)
        self.n_past, self.n_cells = n_past, n_cells
        del self.history[n_history:]

    def clear(self) -> None:
        self.model.remove(self.seq_id, 0)
        self.n_past = self.n_cells = 0
        self.history.clear()

    def close(self) -> None:
        """Close the model when this sequence loaded it; a shared model's sequence only empties."""
        if self.owner:
            self.model.close()
        elif not self.model.closed and self.n_cells:
            self.clear()
