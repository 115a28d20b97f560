"""The torch backend: a transformers VLM watches the stream on one persistent KV cache (DESIGN §4).

Per tick it runs the model over only the new tokens — the previous decision's closing tokens, the
turn's notes / query header / time marker, the frame's image tokens and the assistant header — on a
``TorchContext`` (torch_context.py), then ``decoding.DecisionDecoder`` samples the decision on the same
cache and, at ``commit``, crops the cache back to the longest common prefix of what was generated and
the normalised text; the rest (plus ``<|im_end|>``) is prefilled with the next turn, so the cache
always holds exactly the canonical context. The cache comes from ``engine.kv.make_cache``.

Context layout: the model's own chat template cut into append-only pieces (chat_layout.derive_layout; a
model without a template gets ChatML), the frame at the text the template writes for an image (which the
processor expands). For the Qwen-VL family and JoyAI that is ChatML (gguf_layout.CHATML)::

    <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{chunk prefix}   ← start_chunk
    {notes}{[User Query …]\\nq}\\n<t seconds><|vision_start|><|image_pad|>…<|vision_end|><|im_end|>\\n
    <|im_start|>assistant\\n                                                       ← observe
    </silence>                                                                     ← decide
    <|im_end|>\\n<|im_start|>user\\n …                                              ← commit + next observe
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from engine.backends.base import Backend, BackendConfig, BackendError, BackendStats, ModelLoadError
from engine.backends.chat_layout import image_text, template_layout
from engine.backends.decoding import DecisionDecoder, Sampling
from engine.backends.gguf_layout import CHATML, Layout
from engine.backends.torch_context import TorchContext
from engine.context import ChunkPrefix, Turn


def make_cache(kind: str, model_config, device: str, options=None, model_path: str = ""):
    """``engine.kv.make_cache`` with its errors as one-line ``BackendError``s."""
    try:
        from engine.kv import make_cache as kv_make_cache
    except ImportError:
        raise BackendError(f"kv_cache '{kind}' is not available in this build") from None
    try:
        return kv_make_cache(kind, model_config, device, options, model_path=model_path)
    except (ValueError, KeyError, ImportError) as exc:
        raise BackendError(f"kv_cache '{kind}': {exc}") from None


class TorchBackend(Backend):
    name = "torch"
    wants_frames = True

    def __init__(self) -> None:
        self.cfg: BackendConfig | None = None
        self.model = self.processor = self.tokenizer = None
        self.device = "cpu"
        self.ctx: TorchContext | None = None
        self.decoder: DecisionDecoder | None = None
        self._first_in_chunk = True
        self._stats = BackendStats()
        self.layout: Layout = CHATML
        self.image_marker = ""

    # --- availability & loading ---------------------------------------------------------------
    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            return False, "install the VLM extra: pip install 'presence[vlm]' (torch, transformers)"
        return True, ""

    def load(self, config: BackendConfig) -> None:
        from engine.backends.torch_loading import load_model

        ok, hint = self.is_available()
        if not ok:
            raise ModelLoadError(hint)
        loaded = load_model(config.model, config.device, config.dtype, config.quantization)
        self.attach(loaded.model, loaded.processor, config, loaded.device)

    def attach(self, model, processor, config: BackendConfig, device: str = "cpu") -> None:
        """Use an already-built model and processor (benchmarks build random models in memory)."""
        self.cfg = config
        self.model, self.processor, self.tokenizer = model, processor, processor.tokenizer
        self.device = device
        tok = self.tokenizer
        template = getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None)
        chatml = tok.convert_tokens_to_ids("<|im_start|>") not in (None, tok.unk_token_id)
        if not template and not chatml:
            raise ModelLoadError(f"{config.model}: the model has no chat template and no ChatML tokens, so the "
                                 "torch backend cannot lay out its turns")
        bos, eos = tok.bos_token or "", tok.eos_token or ""
        self.layout = template_layout(template, config.model, CHATML, bos, eos)
        self.image_marker = ((image_text(template, bos, eos) if template else None)
                             or getattr(processor, "image_token", None) or "")
        try:
            import engine.kv as kv

            kv.attach(model, config.kv_cache, config.kv)
        except ImportError:
            raise BackendError(f"kv_cache '{config.kv_cache}' is not available in this build") from None
        except ValueError as exc:
            raise BackendError(f"kv_cache: {exc}") from None
        self.ctx = self.context(seq_id=0)
        self.decoder = DecisionDecoder.for_context(
            self.ctx, Sampling(config.temperature, config.top_p, config.top_k, config.greedy, config.seed),
            config.silence_bias)

    def context(self, seq_id: int) -> TorchContext:
        """A new live context on the loaded model (its own cache): one per stream."""
        cfg = self.cfg

        def cache():
            made = make_cache(cfg.kv_cache, self.model.config, self.device, cfg.kv, model_path=cfg.model)
            # Sliding-window layers (Gemma 3) drop states beyond the window at once; recording lets commit
            # roll a decision back past the window (the layer trims itself again at that crop).
            for layer in getattr(made, "layers", ()):
                if hasattr(layer, "activate_past_recording"):
                    layer.activate_past_recording()
            return made

        ctx = TorchContext(self.model, self.processor, self.device, cache, cfg.n_ctx, seq_id,
                           record_images=bool(cfg.options.get("record_images", False)))
        if self.image_marker:
            ctx.image_marker = self.image_marker  # the family's image text (Qwen-VL's is the class default)
        return ctx

    # --- Backend interface --------------------------------------------------------------------
    def start_chunk(self, prefix: ChunkPrefix) -> None:
        ctx = self._need_loaded()
        t0 = time.perf_counter()
        ctx.reset()
        self.decoder.reset(ctx)
        ctx.append(self.layout.chunk_start(prefix.system, prefix.text))
        self._first_in_chunk = True
        self._stats = BackendStats(prefill_ms=(time.perf_counter() - t0) * 1000)
        self._update_stats(len(ctx))

    def observe(self, turn: Turn) -> None:
        ctx = self._need_loaded()
        if ctx.cache is None:
            raise BackendError("observe() before start_chunk()")
        t0 = time.perf_counter()
        if self.decoder.is_open(ctx):  # decide() ran without commit(): drop what it left
            self.decoder.drop(ctx)
        marker = ctx.image_marker if turn.pixels is not None else None
        n0 = len(ctx)
        ctx.append(self.layout.turn(turn.text_before_image(), marker, self._first_in_chunk), turn.pixels)
        self._first_in_chunk = False
        self._stats.prefill_ms = (time.perf_counter() - t0) * 1000
        self._update_stats(len(ctx) - n0)

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        ctx = self._need_loaded()
        if not ctx.has_logits():
            raise BackendError("decide() before observe()")
        t0 = time.perf_counter()
        try:
            yield from self.decoder.decide(ctx, max_tokens)
        finally:
            self._stats.decide_ms = (time.perf_counter() - t0) * 1000

    def commit(self, text: str) -> None:
        ctx = self._need_loaded()
        t0 = time.perf_counter()
        ctx.queue(self.decoder.commit(ctx, ctx.tokenize(self.layout.decision(text.strip()))))
        self._stats.decide_ms += (time.perf_counter() - t0) * 1000
        self._update_stats(self._stats.tokens_new)

    def stats(self) -> BackendStats:
        return self._stats

    def close(self) -> None:
        self.ctx = None
        self.model = None

    # --- for tests and benchmarks -------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return self.ctx.ids

    @property
    def images(self) -> list:
        return self.ctx.images

    @property
    def image_token_id(self):
        return self.ctx.image_token_id

    @property
    def cache(self):
        return None if self.ctx is None else self.ctx.cache

    def context_ids(self) -> list[int]:
        return self.ctx.context_ids()

    def next_logits(self):
        """Next-token logits [V] after the last forward (a torch copy)."""
        return None if not self.ctx.has_logits() else self.ctx._logits.clone()

    def _update_stats(self, new: int) -> None:
        from engine.kv import kv_bytes

        ctx = self.ctx
        self._stats.tokens_context = len(ctx.context_ids())
        self._stats.tokens_new = new
        b = kv_bytes(ctx.cache)
        self._stats.kv_bytes_fast, self._stats.kv_bytes_offload = b.fast, b.offload
        self._stats.kv_bytes_used = b.used

    def _need_loaded(self) -> TorchContext:
        if self.model is None or self.ctx is None:
            raise BackendError("the torch backend is not loaded")
        return self.ctx
