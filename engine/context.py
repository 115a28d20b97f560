"""The prefix-stable context layout (DESIGN §2, seed_systems §1.3).

One chunk of context, as every backend lays it out:

    [system]  system prompt (fixed for the session)
    [user]    chunk prefix: [Video History] memory text · [Q&A History] · standing query   ← fixed per chunk
              <0 seconds> + frame                                                          ← turn 0
    [asst]    </silence>                                                                    ← decision 0
    [user]    [User Query …] q  <1 seconds> + frame                                        ← turn 1
    [asst]    </response> …
    ...

The prefix is rebuilt only at chunk boundaries, so within a chunk a cached prefix is never
invalidated and each tick costs only its own turn plus its decision.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from engine.options import setting

QUERY_HEADER = "[User Query (IMPORTANT — follow this instruction)]"
QA_HISTORY_WINDOW = 40
HINT_HEADER = "[Perception]"


def time_marker(t: float) -> str:
    """The per-turn time marker, ``<12.0 seconds>`` as the reference adapter writes it."""
    return f"<{float(t):.1f} seconds>"


@dataclass
class Turn:
    """What the model is shown at one tick.

    t: the tick (stream second). pixels: the resized RGB frame [h, w, 3] or None (no frame this tick).
    query: a query that arrived this tick (rendered with the ``[User Query …]`` header).
    notes: extra text the model must see this tick (a brain's digest, a transcript), already quoted.
    change: the frame's change score against the previous sample (for cheap backends).
    """

    t: int
    pixels: np.ndarray | None = None
    query: str | None = None
    notes: list[str] = field(default_factory=list)
    change: float = 1.0
    standing_query: str = ""  # the query in force (for backends that keep no history, e.g. heuristic)
    hint: str = ""  # perception hint line (PerceptionHints), "" when hints are off

    def text_before_image(self) -> str:
        """Everything textual in the turn, in the adapter's order: notes, hint, query header, time marker."""
        parts = list(self.notes)
        if self.hint:
            parts.append(self.hint)
        if self.query:
            parts.append(f"{QUERY_HEADER}\n{self.query}")
        parts.append(time_marker(self.t))
        return "\n".join(parts)


@dataclass
class HintOptions:
    """Perception hints: the frame's change score and its OCR text written into each turn as one line of
    text, for small VLMs that cannot read a frame at the size they are shown it (docs/training.md)."""

    perception_hints: bool = setting(False, "write the change score and the screen's OCR text into each turn "
                                            "(for small models trained with them)")
    max_chars: int = setting(80, "longest OCR text a hint carries", ge=8, le=1000)


def perception_hint(change: float, text: str, max_chars: int = 80) -> str:
    """``[Perception] change 7.2%; text: SALIDA`` — the change score (the session's shared measure, in
    percent) and the frame's text lines joined with `` | `` (``no text`` when OCR found none)."""
    text = " ".join(text.split())[:max_chars]
    return f"{HINT_HEADER} change {100 * max(0.0, change):.1f}%; " + (f"text: {text}" if text else "no text")


class PerceptionHints:
    """Fills ``Turn.hint`` from the turn's own pixels and change score, so every backend that renders
    the turn (``text_before_image``) shows the same line, live and in training. OCR (the ``lite``
    backend's fast reader) runs once per distinct frame (a hash of its pixels): a pure function of the
    frame, so replaying a clip gives the same hints."""

    def __init__(self, options: HintOptions | None = None, cache: int = 256):
        self.options = options or HintOptions()
        self._cache: OrderedDict[bytes, str] = OrderedDict()
        self._size = cache

    def annotate(self, turn: Turn) -> Turn:
        if turn.pixels is not None:
            turn.hint = perception_hint(turn.change, self._text(turn.pixels), self.options.max_chars)
        return turn

    def _text(self, pixels: np.ndarray) -> str:
        key = hashlib.blake2b(np.ascontiguousarray(pixels).tobytes(), digest_size=16).digest()
        if key not in self._cache:
            from engine.perception import fast_ocr

            self._cache[key] = " | ".join(ln.text for ln in fast_ocr.read_lines(pixels))
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return self._cache[key]


@dataclass
class QAEntry:
    query: str
    query_t: float
    responses: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkPrefix:
    """The fixed start of a chunk: system prompt and the prefix text of its first user message."""

    system: str
    text: str  # memory + QA history + standing query; may be empty

    def __bool__(self) -> bool:  # a prefix always exists, even when its text is empty
        return True


class QueryState:
    """The standing query and the bounded Q&A history (query persistence, seed_systems §1.3).

    A query stands until a *different* one arrives; the old one and its timestamped responses then
    move to the history (at most ``window`` entries, oldest dropped).
    """

    def __init__(self, window: int = QA_HISTORY_WINDOW):
        self.current: QAEntry | None = None
        self.history: deque[QAEntry] = deque(maxlen=window)

    @property
    def standing(self) -> str:
        return self.current.query if self.current else ""

    def submit(self, query: str, t: float) -> bool:
        """Set a new standing query; returns False when it equals the one in force (no change)."""
        query = " ".join(query.split())
        if not query or (self.current and self.current.query == query):
            return False
        if self.current is not None:
            self.history.append(self.current)
        self.current = QAEntry(query, t)
        return True

    def record_response(self, t: float, text: str) -> None:
        if self.current is not None and text:
            self.current.responses.append((t, text))


def render_prefix(memory_text: str, queries: QueryState, include_standing: bool = True) -> str:
    """The chunk prefix text: ``[Video History]`` + ``[Q&A History]`` + the standing query."""
    parts: list[str] = []
    if memory_text.strip():
        parts.append(
            "[Video History] (summaries of earlier video; describe what you see, do not imitate this style)\n"
            + memory_text.strip()
        )
    if queries.history:
        lines = ["[Q&A History]"]
        for i, e in enumerate(queries.history, 1):
            lines.append(f"#{i} [Query@{e.query_t:.0f}s] {e.query}")
            lines.extend(f"[Response@{rt:.0f}s] {rtext}" for rt, rtext in e.responses[-5:])
        parts.append("\n".join(lines))
    if include_standing and queries.current is not None:
        parts.append(f"{QUERY_HEADER}\n{queries.current.query}")
    return "\n\n".join(parts)
