"""``TorchContext``: one live context of a transformers VLM (its own KV cache), the torch ``LiveContext``.

Every evaluation runs the model over only the new tokens on the context's cache, with rotary positions
computed for the whole sequence's layout (``torch_positions``), and keeps the last position's logits.
Several contexts may share one loaded model (each owns a cache and a position tracker). Queued tokens
(a committed decision's tail) are prefilled together with the next ``append``: one forward per tick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.backends.base import BackendError

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
# Tokens a decision must never contain: a sampled image placeholder would corrupt the layout.
BANNED = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|im_start|>")


class TorchContext:
    image_marker = IMAGE_PLACEHOLDER

    def __init__(self, model, processor, device: str, make_cache: Callable[[], object], n_ctx: int,
                 seq_id: int = 0, record_images: bool = False):
        import torch

        from engine.backends.torch_positions import RopeTracker

        self.model, self.processor, self.tokenizer = model, processor, processor.tokenizer
        self.device, self.n_ctx, self.seq_id = device, n_ctx, seq_id
        self._make_cache = make_cache
        self.record_images = record_images  # keep every frame's pixel tensors (checks against a full forward)
        tok = self.tokenizer
        self.image_token_id = getattr(model.config, "image_token_id", None)
        self.rope = RopeTracker(model, self.image_token_id)
        eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id, tok.pad_token_id}
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {int(e) for e in eos if e is not None}
        ids = {tok.convert_tokens_to_ids(t) for t in BANNED} | {self.image_token_id}
        self.banned = sorted(int(i) for i in ids if i is not None and i != tok.unk_token_id)
        self._torch = torch
        self.cache = None
        self.ids: list[int] = []  # token ids held by the cache, in order
        self.pending: list[int] = []  # queued: evaluated with the next append
        self.images: list[tuple[object, object]] = []  # (pixel_values, grid_thw) per image, when recorded
        self.image_extras: list[dict] = []  # the processor's other inputs per image, when recorded
        self._logits = None  # [V] next-token logits after the last forward (model device, fp32)

    def __len__(self) -> int:
        return len(self.ids)

    # --- LiveContext ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.cache = self._make_cache()
        self.rope.reset()
        self.ids, self.pending, self.images, self._logits = [], [], [], None
        self.image_extras = []

    def append(self, text: str, pixels: np.ndarray | None = None) -> None:
        """Evaluate the queued tokens + ``text`` (with the frame at ``IMAGE_PLACEHOLDER``) in one forward.
        A chunk that would overflow ``n_ctx`` is refused before anything is evaluated."""
        extra: dict = {}
        if pixels is None:
            ids, pv, grid = self.tokenize(text), None, None
        else:
            from PIL import Image

            enc = self.processor(text=[text], images=[Image.fromarray(pixels)], return_tensors="pt",
                                 add_special_tokens=False)
            ids, pv, grid = enc["input_ids"][0].tolist(), enc.get("pixel_values"), enc.get("image_grid_thw")
            extra = self._image_inputs(enc, len(ids))
        ids = self.pending + ids
        if len(self.ids) + len(ids) > self.n_ctx:
            raise BackendError(f"context full: {len(self.ids) + len(ids)} tokens > n_ctx {self.n_ctx} "
                               "(shorten the chunk or raise n_ctx)")
        self._forward(ids, pv, grid, extra)
        self.pending = []
        if pv is not None and self.record_images:
            self.images.append((pv, grid))
            self.image_extras.append(extra)

    def _image_inputs(self, enc, n_new: int) -> dict:
        """What else the family's processor gives the model with a frame (Idefics3's pixel mask, Gemma 3's
        token types). Per-token inputs cover the whole sequence, zeros before this text: Gemma 3 builds its
        bidirectional image mask by absolute position, so a chunk's types must start at position 0."""
        torch = self._torch
        before = len(self.ids) + len(self.pending)
        out = {}
        for k, v in enc.items():
            if k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw") or not torch.is_tensor(v):
                continue
            if v.dim() == 2 and v.shape[-1] == n_new and before:
                v = torch.cat([v.new_zeros((1, before)), v], dim=1)
            out[k] = v
        return out

    def eval_tokens(self, tokens: Sequence[int]) -> None:
        self._forward(list(tokens))

    def logits(self) -> np.ndarray:
        return self._logits.detach().to("cpu", copy=True).numpy()  # [V] float32, the caller's to modify

    def rollback(self, n: int) -> None:
        drop = len(self.ids) - n
        if drop <= 0:
            return
        self.cache.crop(-drop)
        self.rope.crop(drop)
        del self.ids[n:]

    def queue(self, tokens: Sequence[int]) -> None:
        self.pending.extend(tokens)
        self._logits = None  # the next logits come after the queued tokens

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=False)

    def is_stop(self, token: int) -> bool:
        return token in self.eos_ids

    # --- the model on the cache -------------------------------------------------------------------
    def _forward(self, ids: list[int], pixel_values=None, grid=None, extra: dict | None = None) -> None:
        """Prefill ``ids`` (with at most the given images) on the cache; keep the last logits [V]."""
        torch = self._torch
        t_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, L]
        pos = self.rope.positions(t_ids, grid)  # [3, 1, L]
        kw = dict(input_ids=t_ids, cache=self.cache, use_cache=True, logits_to_keep=1)
        if self.rope.mrope:
            kw["position_ids"] = pos
        if pixel_values is not None:
            kw.update(pixel_values=pixel_values.to(self.device, self.model.dtype), image_grid_thw=grid,
                      mm_token_type_ids=(t_ids == self.image_token_id).int())
            kw.update({k: v.to(self.device) for k, v in (extra or {}).items() if k not in kw})
        with torch.inference_mode():
            out = self.model(**kw)
        self.ids.extend(ids)
        self._logits = out.logits[0, -1].float()  # [V]

    def has_logits(self) -> bool:
        return self._logits is not None

    def context_ids(self) -> list[int]:
        """Every token of the context, the queued ones included (what one full forward would see)."""
        return self.ids + self.pending
