"""TailorKV sparse layer: full K/V in an offload store, a small fast tier, top-k retrieval per step.

Layout of one layer (S sinks, W recent window, G sketch group; positions are absolute)::

    tokens   0 ..... S ........................................ e ............ n_prev ...... n
             ├ sinks ┤├──────────── middle (sketched) ─────────┤├─ recent window ─┤├ new chunk ┤
    fast:    fp K/V   sketch: low-bit K, channel-major            fp K/V  (W <= len < W + G)
                      codes [B, H, D, M*b/8], scale/zero [B, H, D, M/G], max|K| [B, H, D]
    offload: store K/V [B, H, cap, D] for every token (pinned host memory when the model is on CUDA,
             plain host tensors on a CPU-only machine), token-major so a top-k fetch is a row gather.

Per attention call (a decode token, or a chunk of frame tokens) with the real query q:
  1. query rows = every head of the GQA group x the call's tokens (at most ``score_queries`` of a chunk);
  2. channels = top-``channels`` of mean|q|·max|K| per kv head;
  3. mass over the middle = sum over rows of softmax(q[channels] · dequant(sketch rows[channels]));
     with ``rerank`` r > 1, the r·k best are re-scored with their exact keys from the store;
  4. fetch the ``top_k`` (a chunk: ``chunk_top_k``) rows of K/V with the most mass from the store and
     attend over sinks + fetched + recent window + new chunk (causal inside the chunk).
When ``top_k`` covers the whole middle, nothing is scored and attention is exact. Windows and the
store are held in ``store_dtype`` (fp16 under an fp32 model halves them); attention runs in the model's dtype.
"""

from __future__ import annotations

import torch

from engine.kv.base import PresenceLayer, attend_chunk, nbytes, tag
from engine.kv.grow import Growing
from engine.kv.options import KVOptions
from engine.kv.quant import GrowingQTensor, dequantize, quantize, take_rows
from engine.kv.store import RowStore

_D = KVOptions()  # the one set of defaults (KVOptions); window 120 is tailor's (KVOptions.window = 0)


class SparseLayer(PresenceLayer):
    def __init__(self, top_k: int = _D.top_k, sinks: int = _D.sinks, window: int = 120, channels: int = _D.channels,
                 sketch_bits: int = _D.sketch_bits, group: int = _D.group, offload_device: str | None = None,
                 store_dtype: torch.dtype | None = None, chunk_top_k: int = _D.chunk_top_k,
                 score_queries: int = _D.score_queries, rerank: int = _D.rerank, store_bits: int = 16):
        super().__init__(store_dtype)
        self.store_bits = store_bits
        self.top_k, self.sinks, self.window, self.channels = top_k, sinks, window, channels
        self.chunk_top_k = chunk_top_k or 4 * top_k  # 0 = 4 x top_k, as KVOptions says
        self.score_queries, self.rerank = score_queries, rerank
        self.sketch_bits, self.group = sketch_bits, group
        self.offload_device = offload_device
        self._clear()

    @classmethod
    def from_options(cls, o: KVOptions, **kw) -> SparseLayer:
        return cls(top_k=o.top_k or _D.top_k, sinks=o.sinks, window=o.window or 120, channels=o.channels,
                   sketch_bits=o.sketch_bits, group=o.group, chunk_top_k=o.chunk_top_k,
                   score_queries=o.score_queries, rerank=o.rerank, **kw)

    def _clear(self):
        self.n = 0
        self.store: RowStore | None = None  # offload tier: every token's K/V (store.py)
        # offload tier, for an exact rollback over a lossy (8-bit) store: fp copies of the last flushed rows
        self.shadow_k = self.shadow_v = None  # [B, H, <= window + 2 * group, D]
        self.group_max = Growing(-1)  # offload tier: max|K| per channel per sketched group [B, H, D, M/G]
        self.sink_k = self.sink_v = None  # [B, H, <=S, D]
        self.win_k = self.win_v = None  # [B, H, n - e, D]
        # keys^T over the middle, [B, H, D, M], grown in place (grow.py): a flush copies only the new groups
        self.sketch = Growing(-1) if self.sketch_bits >= 16 else GrowingQTensor(-1)
        self.maxabs = None  # [B, H, D]
        self.e = self.sinks  # end of the sketched middle
        self._pending = None  # (n_prev, q) between update and attend

    # -- bookkeeping ---------------------------------------------------------------------------
    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        if self.offload_device is None:
            self.offload_device = "cpu"
        self.pinned = self.device.type == "cuda" and torch.cuda.is_available()
        self.store = RowStore(self.store_bits, self.sdtype, self.offload_device, self.pinned)
        empty = key_states[:, :, :0].to(self.sdtype)
        self.sink_k = self.sink_v = self.win_k = self.win_v = empty
        self.maxabs = torch.zeros(self.batch, self.heads, self.head_dim, device=self.device, dtype=torch.float32)

    def _sketch_flush(self) -> None:
        """Move whole groups that left the recent window from the window into the sketch."""
        over = (self.n - self.window) - self.e
        if over < self.group or self.win_k.shape[-2] < self.group:
            return
        m = min(over // self.group * self.group, self.win_k.shape[-2] // self.group * self.group)
        kt = self.win_k[:, :, :m].transpose(-1, -2).contiguous()  # [B, H, D, m]
        gmax = kt.abs().reshape(*kt.shape[:-1], m // self.group, self.group).amax(-1).float()  # [B, H, D, m/G]
        self.group_max.append(gmax.to(self.offload_device))
        self.maxabs = torch.maximum(self.maxabs, gmax.amax(-1))
        self.sketch.append(kt if self.sketch_bits >= 16 else quantize(kt, self.sketch_bits, self.group))
        if self.store_bits < 16:  # keep exact copies for a rollback; the 8-bit store only approximates them
            keep = self.window + 2 * self.group  # covers any rollback of up to window + group tokens
            fk, fv = self.win_k[:, :, :m].to(self.offload_device), self.win_v[:, :, :m].to(self.offload_device)
            self.shadow_k = fk[:, :, -keep:] if self.shadow_k is None else torch.cat([self.shadow_k, fk], -2)[:, :, -keep:]
            self.shadow_v = fv[:, :, -keep:] if self.shadow_v is None else torch.cat([self.shadow_v, fv], -2)[:, :, -keep:]
        self.win_k, self.win_v = self.win_k[:, :, m:], self.win_v[:, :, m:]
        self.e += m

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self._pending is not None:
            raise RuntimeError("the tailor/sink KV cache needs attn_implementation='presence_kv' "
                               "(engine.kv.ATTN_IMPLEMENTATION); the model attended without it")
        self._sketch_flush()
        q = key_states.shape[-2]
        ks, vs = key_states.to(self.sdtype), value_states.to(self.sdtype)
        self.store.append(ks, vs)
        n_prev = self.n
        to_sink = max(0, min(q, self.sinks - n_prev))
        if to_sink:
            self.sink_k = torch.cat([self.sink_k, ks[:, :, :to_sink]], -2)
            self.sink_v = torch.cat([self.sink_v, vs[:, :, :to_sink]], -2)
        self.win_k = torch.cat([self.win_k, ks[:, :, to_sink:]], -2)
        self.win_v = torch.cat([self.win_v, vs[:, :, to_sink:]], -2)
        self.n += q
        self._pending = (n_prev, q)
        return tag(key_states, value_states, self)  # model dtype: attention must not see fp16

    def crop(self, tokens_to_remove: int) -> None:
        t = min(self._check_crop(tokens_to_remove), self.n)
        if t == 0 or not self.is_initialized:
            return
        old_e, old_n = self.e, self.n
        self.n -= t
        self._pending = None
        self.store.truncate(self.n)
        self.sink_k, self.sink_v = self.sink_k[:, :, : self.n], self.sink_v[:, :, : self.n]
        limit = max(self.sinks, self.n - self.window)
        if self.e > limit:  # drop sketch groups that now fall inside the recent window
            keep = max(0, (limit - self.sinks) // self.group * self.group)
            self.sketch.truncate(keep)
            self.group_max.truncate(keep // self.group)
            self.e = self.sinks + keep
            self.maxabs = (self.group_max.view().amax(-1).to(self.device) if keep else torch.zeros_like(self.maxabs))
        # the new window [lo, n): exact rows from the old window and the shadow of the last flushed rows;
        # anything older (a rollback deeper than window + group tokens) comes from the store (8-bit: approximate)
        lo = max(self.e, min(self.n, self.sinks))
        if self.n <= lo:
            self.win_k, self.win_v = self.win_k[:, :, :0], self.win_v[:, :, :0]
        else:
            parts_k, parts_v = [self.win_k], [self.win_v]
            start = old_n - self.win_k.shape[-2]  # == old_e once the sinks are full
            if self.shadow_k is not None and lo < start:
                shadow = min(self.shadow_k.shape[-2], old_e - self.e)  # shadow rows at positions [start - s, start)
                parts_k.insert(0, self.shadow_k[:, :, self.shadow_k.shape[-2] - shadow:].to(self.device))
                parts_v.insert(0, self.shadow_v[:, :, self.shadow_v.shape[-2] - shadow:].to(self.device))
                start -= shadow
            if lo < start:
                k, v = self.store.range(lo, start)
                parts_k.insert(0, k.to(self.device))
                parts_v.insert(0, v.to(self.device))
                start = lo
            self.win_k = torch.cat(parts_k, -2)[:, :, lo - start: self.n - start]
            self.win_v = torch.cat(parts_v, -2)[:, :, lo - start: self.n - start]
        if self.shadow_k is not None:  # the shadow ends where the sketched middle now ends
            drop = old_e - self.e
            self.shadow_k = self.shadow_k[:, :, : max(0, self.shadow_k.shape[-2] - drop)]
            self.shadow_v = self.shadow_v[:, :, : max(0, self.shadow_v.shape[-2] - drop)]

    def reset(self) -> None:
        self._clear()
        self.is_initialized = False

    def nbytes(self) -> tuple[int, int]:
        fast = self.sketch.nbytes + nbytes(self.sink_k, self.sink_v, self.win_k, self.win_v, self.maxabs)
        store = self.store.nbytes if self.store is not None else 0
        return fast, store + self.group_max.nbytes + nbytes(self.shadow_k, self.shadow_v)

    def used_nbytes(self) -> int:
        """``nbytes`` without the grown buffers' spare capacity."""
        fast, off = self.nbytes()
        spare = self.sketch.nbytes - self.sketch.used_nbytes + self.group_max.nbytes - self.group_max.used_nbytes
        if self.store is not None:
            spare += self.store.nbytes - self.store.used_nbytes
        return fast + off - spare

    # -- retrieval -----------------------------------------------------------------------------
    def select(self, query: torch.Tensor) -> torch.Tensor | None:
        """Absolute positions [B, H, k] of the middle tokens to fetch for ``query`` [B, Hq, q, D].

        The score of a middle token is the attention mass the query rows would give it, estimated through
        the sketch: per query row (every head of the GQA group; up to ``score_queries`` tokens of a chunk),
        softmax over the middle of the partial logits on the ``channels`` channels where mean|q|·max|K| is
        largest, summed over the rows. Summing probabilities, not averaging the queries first, keeps a token
        that one head (or one frame token) needs badly: at 8k tokens on SmolLM2 it halves the perplexity
        cost of the sparse layers against TailorKV's GQA-mean query (``benchmarks/kv_cache.py``).
        With ``rerank`` = r > 1 the sketch only shortlists r·k candidates; their exact keys (all channels, from
        the store) are scored the same way and decide the final k. A 2-bit sketch alone ranks the head of the
        distribution poorly (softmax amplifies its rounding); the shortlist costs one key-only fetch of r·k rows.
        A chunk (q > 1) fetches ``chunk_top_k`` rows: its tokens need more of the past between them than one
        decoded token, and the fetch is paid once per chunk, not per token.
        """
        m = self.e - self.sinks
        if m <= 0:
            return None
        b, hq, q, d = query.shape
        k = self.top_k if q == 1 else max(self.top_k, self.chunk_top_k)
        if k >= m:
            return torch.arange(self.sinks, self.e, device=self.device).expand(self.batch, self.heads, m)
        if q > self.score_queries:  # evenly spaced tokens of a long chunk, always including its last
            query = query[:, :, torch.linspace(0, q - 1, self.score_queries, device=query.device).round().long()]
        rows_q = query.float().reshape(b, self.heads, -1, d)  # [B, H, R, D]: R = heads of the group x tokens
        c = min(self.channels, d)
        ch = (rows_q.abs().mean(2) * self.maxabs).topk(c, dim=-1).indices  # [B, H, c]
        if isinstance(self.sketch, GrowingQTensor):
            keys_c = dequantize(self.sketch.rows(ch))  # [B, H, c, M]
        else:
            keys_c = take_rows(self.sketch.buf, ch).narrow(-1, 0, m).float()
        q_c = torch.gather(rows_q, 3, ch.unsqueeze(2).expand(b, self.heads, rows_q.shape[2], c))  # [B, H, R, c]
        mass = (q_c @ keys_c * d**-0.5).softmax(-1).sum(2)  # [B, H, M]
        n_cand = min(m, k * self.rerank) if self.rerank > 1 else k
        cand = mass.topk(n_cand, dim=-1, sorted=False).indices + self.sinks  # [B, H, C]
        if n_cand == k:
            return cand
        # second stage: the candidates' exact keys (all channels) from the store decide the final k
        keys = self.store.keys(cand).to(self.device).float()  # [B, H, C, D]
        exact = (rows_q @ keys.transpose(-1, -2) * d**-0.5).softmax(-1).sum(2)  # [B, H, C]
        return torch.gather(cand, 2, exact.topk(k, dim=-1, sorted=False).indices)

    def fetch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather rows idx [B, H, k] of K and V from the offload store onto the fast device."""
        k, v = self.store.fetch(idx)
        return k.to(self.device, non_blocking=True), v.to(self.device, non_blocking=True)

    def attend(self, query: torch.Tensor, scaling: float) -> torch.Tensor:
        self._pending = None
        idx = self.select(query)
        # keys: sinks, fetched middle rows (all older than the window), then the window, which ends with
        # this call's new tokens: the layout attend_chunk's bottom-right causality needs
        if idx is None:
            keys = torch.cat([self.sink_k, self.win_k], -2)
            values = torch.cat([self.sink_v, self.win_v], -2)
        else:
            fk, fv = self.fetch(idx)
            keys = torch.cat([self.sink_k, fk, self.win_k], -2)
            values = torch.cat([self.sink_v, fv, self.win_v], -2)
        out = attend_chunk(query, keys, values, scaling)
        self._sketch_flush()  # a long chunk leaves the window right away, so the fast tier stays bounded
        return out
