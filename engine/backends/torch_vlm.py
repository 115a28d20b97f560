"""The torch backend: a transformers VLM watches the stream on one persistent KV cache (DESIGN §4).

Per tick it runs the model over only the new tokens — the previous decision's closing tokens, the
turn's notes / query header / time marker, the frame's image tokens and the assistant header — with
rotary positions computed for the whole sequence's layout (``torch_positions``), then samples the
decision token by token on the same cache. ``commit`` crops the cache back to the longest common
prefix of what was generated and the normalised text, and queues the rest (plus ``<|im_end|>``) to
be prefilled with the next turn, so the cache always holds exactly the canonical context.

Context layout (ChatML, as the Qwen-VL chat templates and the JoyAI adapter render it)::

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
from engine.context import ChunkPrefix, Turn

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
SILENCE, RESPONSE = "</silence>", "</response>"


def make_cache(kind: str, model_config, device: str, options: dict | None = None):
    """``full`` → a transformers DynamicCache (growing geometrically unless ``growable`` is False);
    other kinds come from ``engine.kv`` (TailorKV & co)."""
    if kind in ("", "full"):
        if (options or {}).get("growable", True):
            from engine.backends.torch_growcache import GrowingDynamicCache

            return GrowingDynamicCache(config=model_config)
        from transformers import DynamicCache

        return DynamicCache(config=model_config)
    try:
        from engine.kv import make_cache as kv_make_cache
    except ImportError:
        raise BackendError(f"kv_cache '{kind}' is not available in this build") from None
    try:
        return kv_make_cache(kind, model_config, device, options)
    except (ValueError, KeyError, ImportError) as exc:
        raise BackendError(f"kv_cache '{kind}': {exc}") from None


def cache_bytes(cache) -> tuple[int, int]:
    """(fast, offload) bytes held by a cache, through its own report if it has one, else its layers."""
    report = getattr(cache, "kv_bytes", None)
    if callable(report):
        fast, offload = report()
        return int(fast), int(offload)
    import torch

    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total, 0


def sample_token(logits, greedy: bool, temperature: float, top_k: int, top_p: float, generator) -> int:
    """One token from logits [V]: greedy, or temperature + top-k + top-p (JoyAI: 0.8, 40, 0.9)."""
    import torch

    if greedy or temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        vals, idx = torch.topk(logits, top_k)
    else:
        vals, idx = torch.sort(logits, descending=True)
    probs = torch.softmax(vals, dim=-1)
    if 0 < top_p < 1:
        keep = torch.cumsum(probs, dim=-1) - probs < top_p  # always keeps the most likely token
        probs = probs * keep
        probs = probs / probs.sum()
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(idx[choice])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class TorchBackend(Backend):
    name = "torch"
    wants_frames = True

    def __init__(self) -> None:
        self.cfg: BackendConfig | None = None
        self.model = self.processor = self.tokenizer = self.cache = self.rope = None
        self.device = "cpu"
        self.ids: list[int] = []  # token ids held by the cache, in order
        self.pending: list[int] = []  # committed tokens not yet prefilled (go in with the next turn)
        self.images: list[tuple[object, object]] = []  # (pixel_values, grid_thw) per image, in order
        self._fed: list[int] = []  # this decision's tokens already in the cache
        self._logits = None  # [V] next-token logits after the last forward
        self._user_open = False
        self.record_images = False
        self._stats = BackendStats()

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
        import torch

        from engine.backends.torch_positions import RopeTracker

        self.cfg = config
        self.model, self.processor, self.tokenizer = model, processor, processor.tokenizer
        self.device = device
        self._use_kv_attention(config.kv_cache)
        tok = self.tokenizer
        if tok.convert_tokens_to_ids(IM_START) in (None, tok.unk_token_id):
            raise ModelLoadError(
                f"{config.model}: the torch backend supports ChatML (Qwen-VL family) chat layouts; this model has none"
            )
        self.image_token_id = getattr(self.model.config, "image_token_id", None)
        self.rope = RopeTracker(self.model, self.image_token_id)
        eos = {tok.convert_tokens_to_ids(IM_END), tok.eos_token_id, tok.pad_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {int(e) for e in eos if e is not None}
        self._generator = torch.Generator(device="cpu").manual_seed(int(config.seed))
        self._silence_bias_at = self._silence_fork()
        # Tokens a decision must never contain: a sampled image placeholder would corrupt the layout.
        banned = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", IM_START]
        ids = {tok.convert_tokens_to_ids(t) for t in banned} | {self.image_token_id}
        self._banned = torch.tensor(sorted(i for i in ids if i is not None and i != tok.unk_token_id), dtype=torch.long)
        self._close_ids = self._encode(IM_END + "\n")
        # Keep every frame's pixel tensors (for checks against a full forward); off in real runs.
        self.record_images = bool(config.options.get("record_images", False))

    def _use_kv_attention(self, kind: str) -> None:
        """TailorKV / sink caches attend through their own attention function: switch the text model to it."""
        if kind in ("", "full"):
            # Packed-GQA attention without a materialised mask (torch_attention): per-tick cost beyond the
            # attention arithmetic stays O(new tokens). ``options.fast_attention = False`` keeps stock SDPA.
            if self.cfg.options.get("fast_attention", True):
                from engine.backends import torch_attention

                torch_attention.use(self.model, torch_attention.register())
            return
        try:
            import engine.kv as kv
        except ImportError:
            raise BackendError(f"kv_cache '{kind}' is not available in this build") from None
        if kind not in getattr(kv, "KINDS", (kind,)):
            raise BackendError(f"kv_cache '{kind}' is unknown (full | tailor | quantized | sink)")
        if kv.needs_presence_attention(kind):
            cfg = self.model.config
            sub = hasattr(cfg, "get_text_config") and cfg.get_text_config() is not cfg
            impl = kv.ATTN_IMPLEMENTATION  # the vision tower keeps its own attention
            self.model.set_attn_implementation({"text_config": impl} if sub else impl)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _silence_fork(self) -> tuple[list[int], int] | None:
        """Where the silence marker's tokens part from the response marker's: (common prefix, token).

        The bias goes on that token only when the decision so far equals the common prefix, so it
        shifts exactly the silence-vs-response choice whether the markers are special tokens (fork
        at step 0) or plain text that shares a leading ``</`` token.
        """
        sil, resp = self._encode(SILENCE), self._encode(RESPONSE)
        k = _common_prefix(sil, resp)
        return (sil[:k], sil[k]) if k < len(sil) else None

    # --- the model on the cache ---------------------------------------------------------------
    def _forward(self, ids: list[int], pixel_values=None, grid=None) -> None:
        """Prefill ``ids`` (with at most the given images) on the cache; keep the last logits [V]."""
        import torch

        t_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, L]
        pos = self.rope.positions(t_ids, grid)  # [3, 1, L]
        kw = dict(input_ids=t_ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        if self.rope.mrope:
            kw["position_ids"] = pos
        if pixel_values is not None:
            kw.update(pixel_values=pixel_values.to(self.device, self.model.dtype), image_grid_thw=grid,
                      mm_token_type_ids=(t_ids == self.image_token_id).int())
        with torch.inference_mode():
            out = self.model(**kw)
        self.ids.extend(ids)
        self._logits = out.logits[0, -1].float()  # [V]

    def _crop(self, n: int) -> None:
        if n <= 0:
            return
        self.cache.crop(-n)
        self.rope.crop(n)
        del self.ids[-n:]

    # --- Backend interface --------------------------------------------------------------------
    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self._need_loaded()
        t0 = time.perf_counter()
        kv_options = {"model_path": self.cfg.model, **(self.cfg.options.get("kv") or {})}
        self.cache = make_cache(self.cfg.kv_cache, self.model.config, self.device, kv_options)
        self.rope.reset()
        self.ids, self.pending, self.images, self._fed = [], [], [], []
        text = f"{IM_START}system\n{prefix.system}{IM_END}\n{IM_START}user\n"
        if prefix.text.strip():
            text += prefix.text.strip() + "\n"
        self._forward(self._encode(text))
        self._user_open = True
        self._stats = BackendStats(prefill_ms=(time.perf_counter() - t0) * 1000)
        self._update_stats(len(self.ids))

    def observe(self, turn: Turn) -> None:
        self._need_loaded()
        if self.cache is None:
            raise BackendError("observe() before start_chunk()")
        t0 = time.perf_counter()
        text = "" if self._user_open else f"{IM_START}user\n"
        text += turn.text_before_image()
        images = None
        if turn.pixels is not None:
            from PIL import Image

            text += IMAGE_PLACEHOLDER
            images = [Image.fromarray(turn.pixels)]
        text += f"{IM_END}\n{IM_START}assistant\n"
        enc = self.processor(text=[text], images=images, return_tensors="pt")
        ids = self.pending + enc["input_ids"][0].tolist()
        pv, grid = enc.get("pixel_values"), enc.get("image_grid_thw")
        if len(self.ids) + len(ids) > self.cfg.n_ctx:  # nothing is prefilled: the context stays as it was
            raise BackendError(f"context full: {len(self.ids) + len(ids)} tokens > n_ctx {self.cfg.n_ctx} "
                               "(shorten the chunk or raise n_ctx)")
        self._forward(ids, pv, grid)
        if pv is not None and self.record_images:
            self.images.append((pv, grid))
        self.pending, self._fed, self._user_open = [], [], False
        self._stats.prefill_ms = (time.perf_counter() - t0) * 1000
        self._update_stats(len(ids))

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        self._need_loaded()
        if self._logits is None:
            raise BackendError("decide() before observe()")
        t0 = time.perf_counter()
        cfg = self.cfg
        generated: list[int] = []
        emitted = ""
        try:
            for step in range(max(0, int(max_tokens))):
                if step > 0:  # feed the previous token only now: the last sampled one never costs a forward
                    self._forward([generated[-1]])
                    self._fed.append(generated[-1])
                logits = self._logits.clone()
                logits[self._banned] = float("-inf")
                fork = self._silence_bias_at
                if cfg.silence_bias and fork is not None and generated == fork[0]:
                    logits[fork[1]] += cfg.silence_bias
                tok = sample_token(logits, cfg.greedy, cfg.temperature, cfg.top_k, cfg.top_p, self._generator)
                if tok in self.eos_ids:
                    break
                generated.append(tok)
                text = self.tokenizer.decode(generated, skip_special_tokens=False)
                if "\n" in text:  # the decision is one line: stop at its end
                    text = text.split("\n", 1)[0]
                    if len(text) > len(emitted):
                        yield text[len(emitted):]
                    break
                if len(text) > len(emitted) and not text.endswith("\ufffd"):  # whole characters only
                    yield text[len(emitted):]
                    emitted = text
        finally:
            self._stats.decide_ms = (time.perf_counter() - t0) * 1000

    def commit(self, text: str) -> None:
        self._need_loaded()
        t0 = time.perf_counter()
        target = self._encode(text.strip()) + self._close_ids
        keep = _common_prefix(self._fed, target)
        self._crop(len(self._fed) - keep)  # roll back what normalisation changed
        self.pending = target[keep:]  # prefilled together with the next turn: one forward per tick
        self._fed = []
        self._logits = None
        self._stats.decide_ms += (time.perf_counter() - t0) * 1000
        self._update_stats(self._stats.tokens_new)

    def stats(self) -> BackendStats:
        return self._stats

    def close(self) -> None:
        self.cache = None
        self.model = None

    # --- helpers ------------------------------------------------------------------------------
    def context_ids(self) -> list[int]:
        """Every token of the context, the queued ones included (what one full forward would see)."""
        return self.ids + self.pending

    def next_logits(self):
        """Next-token logits [V] after the last forward (a copy)."""
        return None if self._logits is None else self._logits.clone()

    def _update_stats(self, new: int) -> None:
        self._stats.tokens_context = len(self.ids) + len(self.pending)
        self._stats.tokens_new = new
        self._stats.kv_bytes_fast, self._stats.kv_bytes_offload = cache_bytes(self.cache)

    def _need_loaded(self) -> None:
        if self.model is None:
            raise BackendError("the torch backend is not loaded")
