"""The ``heuristic`` backend: no model, deterministic rules. The baseline for tests and benchmarks.

Responds when the scene differs substantially from the last frame it *responded* to — so a slow
fade gives one response (the drift accumulates against a fixed reference) and sensor noise or codec
flicker none, while a change of colour at equal brightness counts (engine.frames, the shared measure) —
and names what is new: the OCR headline of the new screen when rapidocr is installed, so consecutive
replies differ and dedup does not swallow them. When the standing query asks to watch for a word or
phrase ("tell me when SOLD OUT appears"), it responds the first second OCR finds it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import numpy as np

from engine.backends.base import Backend, BackendConfig, BackendStats, HeuristicOptions
from engine.context import ChunkPrefix, Turn
from engine.frames import MotionMeter, changed_fraction, thumbnail
from engine.perception import instructions, ocr
from engine.protocol import neutralize


@functools.lru_cache(maxsize=64)  # asked every tick with the same standing query
def watched_phrase(query: str) -> str:
    """The phrase a query asks to watch for, as the user wrote it, or ''. ("tell me when SOLD OUT appears"
    → "SOLD OUT"). Read by the one instruction parser lite uses, so both backends know the same phrasings."""
    plan = instructions.parse(query or "")
    phrases = [p.phrase for p in (plan.parts or [plan]) if p.kind == "watch" and p.phrase and not p.subject]
    if not phrases:
        return ""
    m = re.search(re.escape(phrases[0]), query, re.IGNORECASE)
    return m.group(0) if m else phrases[0]


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


class HeuristicBackend(Backend):
    name = "heuristic"

    def __init__(self, options: HeuristicOptions | None = None):
        self._explicit_options = options is not None
        self.options = options or HeuristicOptions()
        self._ref_thumb: np.ndarray | None = None  # thumbnail of the last frame we responded to
        self._prev_thumb: np.ndarray | None = None
        self._motion = MotionMeter()  # moving vs only noisy, against this stream's own noise
        self._following = False  # after a response, the reference follows the scene until it settles
        self._last_response_t = -1e9
        self._found: set[str] = set()
        self._pending = ""
        self._turns = 0

    def load(self, config: BackendConfig) -> None:
        if not self._explicit_options:
            self.options = config.heuristic

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self._turns = 0  # the heuristic keeps no context beyond its reference frame

    def observe(self, turn: Turn) -> None:
        self._turns += 1
        self._pending = "</silence>"
        if turn.pixels is None:
            return
        thumb = thumbnail(turn.pixels)
        lines: list[ocr.TextLine] | None = None

        def read() -> list[ocr.TextLine]:
            nonlocal lines
            if lines is None:
                lines = ocr.read_lines(turn.pixels) if self.options.ocr else []
            return lines

        phrase = watched_phrase(turn.standing_query)
        if phrase and _norm(phrase) not in self._found:
            text = _norm(" ".join(ln.text for ln in read()))
            if _norm(phrase) and _norm(phrase) in text:
                self._found.add(_norm(phrase))
                self._pending = f"</response> \"{neutralize(phrase)}\" is on screen now ({turn.t}s)."
                self._ref_thumb, self._last_response_t = thumb, turn.t
                return
        moving = self._motion.motion(self._prev_thumb, thumb) > self.options.motion_eps
        self._prev_thumb = thumb
        if self._following:
            # Still the same transition (a fade, a scroll): absorb it so it gives one response only.
            if moving:
                self._ref_thumb = thumb
                return
            self._following = False
        changed = changed_fraction(self._ref_thumb, thumb)
        if changed >= self.options.change_threshold and turn.t - self._last_response_t >= self.options.cooldown_s:
            first = self._ref_thumb is None
            self._ref_thumb, self._last_response_t = thumb, turn.t
            self._following = True
            head = neutralize(ocr.headline(read())) if self.options.ocr else ""  # screen text is content only
            what = f"“{head}”" if head else f"the scene changed ({changed:.0%} of the view)"
            self._pending = f"</response> {'Now showing' if first else 'New screen'}: {what}"

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield self._pending

    def commit(self, text: str) -> None:
        self._pending = ""

    def stats(self) -> BackendStats:
        return BackendStats(tokens_context=self._turns, tokens_new=1)
