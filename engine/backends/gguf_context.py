"""``GgufContext``: a llama.cpp ``LiveSequence`` as the ``decoding.LiveContext`` of the llamacpp backend.

The sequence's ``history`` records what the cache holds, piece by piece, so a fresh context can replay it.
Decision tokens are *loose* while the decoder samples (evaluated, not yet in ``history``); ``rollback``
trims only loose tokens, and ``queue`` (the decoder's commit) records the kept ones as one text piece and
evaluates the rest as another. Positions and cells advance together for text, so a rollback within the
loose tokens moves both by the same count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.backends.base import BackendError
from engine.backends.gguf_sequence import LiveSequence, Piece


class GgufContext:
    banned: Sequence[int] = ()

    def __init__(self, seq: LiveSequence):
        self.seq = seq
        self.seq_id = seq.seq_id  # llama.cpp's sequence id: several streams share one loaded model
        self.n_ctx = seq.n_ctx
        self.image_marker = seq.marker
        self._loose: list[int] = []  # decision tokens evaluated beyond history
        self._base = (0, 0, 0)  # (n_past, n_cells, len(history)) where the loose tokens start

    def __len__(self) -> int:
        return self.seq.n_cells

    def reset(self) -> None:
        self.seq.clear()
        self._loose = []

    def plan(self, text: str, pixels: np.ndarray | None = None) -> list[Piece]:
        """``text`` (frame at ``image_marker``) as pieces, BOS first at the start of a chunk; evaluates nothing."""
        return self.seq.plan(text, pixels, add_bos=len(self) == 0)

    def append(self, text: str, pixels: np.ndarray | None = None, pieces: list[Piece] | None = None) -> None:
        self._settle()
        self.seq.eval(pieces if pieces is not None else self.plan(text, pixels))

    def eval_tokens(self, tokens: Sequence[int]) -> None:
        if not self._loose:
            self._base = (self.seq.n_past, self.seq.n_cells, len(self.seq.history))
        for tok in tokens:
            self.seq.decode_one(tok)
            self._loose.append(tok)

    def logits(self) -> np.ndarray:
        return self.seq.logits()

    def rollback(self, n: int) -> None:
        past, cells, hist = self._base if self._loose else (self.seq.n_past, self.seq.n_cells, len(self.seq.history))
        keep = n - cells
        if keep < 0 or keep > len(self._loose):
            raise BackendError(f"llamacpp: can roll back only a decision's tokens (to {n}, decision from {cells})")
        self.seq.rollback(past + keep, cells + keep, hist)
        del self._loose[keep:]

    def queue(self, tokens: Sequence[int]) -> None:
        """Record the kept decision tokens, then evaluate ``tokens`` now (two history pieces, as a replay needs)."""
        self.seq.history.append(Piece("text", list(self._loose)))
        self._loose = []
        self.seq.eval([Piece("text", list(tokens))])

    def tokenize(self, text: str) -> list[int]:
        return self.seq.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.seq.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_stop(self, token: int) -> bool:
        return self.seq.is_eog(token)

    def _settle(self) -> None:
        if self._loose:  # evaluated but never committed nor rolled back: they are in the cache, so record them
            self.seq.history.append(Piece("text", self._loose))
            self._loose = []
