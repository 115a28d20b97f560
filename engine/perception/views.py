"""When has the view changed meaningfully? (a new slide, page, window or scene — not motion or scrolling)

:class:`ViewTracker` compares each second's 80×60 colour signature (``engine.frames.signature``: the
change measure every backend shares) with the previous second (is the
view still moving?) and with the last view it reported (how much is new?). A change is offered once
the view has *settled* — it moves little compared with how far it is from the reported view — so a
hard cut is offered one second later, a fade or a scroll once it stops, and a view that never settles
(a terminal scrolling a build log) not at all. The caller decides whether a change is worth saying
and calls :meth:`accept`; until then the reported view stays the reference, so slow drift adds up.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field

import numpy as np

from engine.frames import changed_fraction
from engine.perception.ocr import TextLine, headline
from engine.protocol import similarity


@dataclass
class ViewChange:
    head: str  # the new view's most prominent line ('' when it has no readable text)
    body: list[str]  # its other lines, top to bottom
    label: str  # slide | page | screen: what the layout looks like (for the wording)
    fraction: float  # share of thumbnail cells that differ from the last reported view
    head_changed: bool  # a new headline (a new slide title, a new page heading)
    text_changed: bool  # most of the readable text is new
    big: bool  # most of the view is new and looks different (another window, another scene)
    kept: float = 0.0  # share of the reported view's text lines still on screen (scrolling and edits keep many)
    prominent: bool = False  # the headline stands out (a title), rather than being the top line of even text
    lines: list[TextLine] = field(default_factory=list)


def clean_line(s: str) -> str:
    """An OCR line without its bullet and trailing separators ("• Every second: silence," → "Every second: silence")."""
    return s.strip().lstrip("•·◦▪‣*-–—> ").rstrip(" ,;:").strip()


def body_lines(lines: list[TextLine], head: str) -> list[str]:
    """The lines under the headline, bullets stripped; a line starting in lower case continues the one before."""
    out: list[str] = []
    for ln in lines:
        b = ln.text.strip().lstrip("•·◦▪‣*-–—> ")
        if ln.text == head or _alnum(b) < 2:
            continue
        if out and b[0].islower():
            out[-1] = f"{out[-1]} {b}"
        else:
            out.append(b)
    return [clean_line(b) for b in out]


def _alnum(s: str) -> int:
    return len(re.sub(r"[^A-Za-z0-9]", "", s))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signatures' lightness: an exposure shift keeps it high, another scene does not."""
    a, b = a[:, :, 0] - a[:, :, 0].mean(), b[:, :, 0] - b[:, :, 0].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-9))


def prominent(lines: list[TextLine], height: int) -> bool:
    """The headline is a title: taller than the other lines, or a slide's title."""
    if not lines:
        return False
    head = max(lines, key=lambda ln: (round(ln.height / 4), -ln.top))
    others = [ln.height for ln in lines if ln is not head]
    return not others or head.height >= 1.3 * statistics.median(others) or layout_label(lines, height) == "slide"


def layout_label(lines: list[TextLine], height: int) -> str:
    """``slide`` when one big line heads a few short ones, ``page`` for many lines, else ``screen``."""
    if not lines:
        return "screen"
    head = max(lines, key=lambda ln: (round(ln.height / 4), -ln.top))
    others = [ln for ln in lines if ln is not head]
    if 2 <= len(lines) <= 10 and head is min(lines, key=lambda ln: ln.top) and head.top <= 0.4 * height:
        gap = min(ln.top for ln in others) - (head.top + head.height)
        if head.height >= 1.3 * statistics.median(ln.height for ln in others) or gap >= 0.8 * head.height:
            return "slide"  # a title on top, set apart by its size or by space below it
    return "page" if len(lines) >= 12 else "screen"


class ViewTracker:
    def __init__(self, cell_delta: float = 0.06, settle: float = 0.005, min_change: float = 0.005,
                 big_change: float = 0.3, big_corr: float = 0.6):
        self.cell_delta = cell_delta  # a cell changed when its colour moved this much (ΔE/100) above the noise
        self.settle = settle  # moving less than this (or a quarter of the change) between seconds = settled
        self.min_change = min_change  # below this share of cells the view is the same one
        self.big_change = big_change  # above this share of cells (and big_corr) it is another window or scene
        self.big_corr = big_corr  # below this thumbnail correlation the view is laid out differently
        self._prev: np.ndarray | None = None
        self._ref: np.ndarray | None = None
        self._ref_head = ""
        self._ref_text = ""
        self._offer: tuple[np.ndarray, str, str] | None = None

    def _frac(self, a: np.ndarray, b: np.ndarray) -> float:
        return changed_fraction(a, b, self.cell_delta)

    def update(self, thumb: np.ndarray, lines: list[TextLine], height: int) -> ViewChange | None:
        """The settled change since the last accepted view, or None. ``thumb``: an 80×60 signature."""
        prev, self._prev = self._prev, thumb
        lines = [ln for ln in lines if _alnum(ln.text) >= 2]  # OCR specks ("i", "1") on a camera view are no text
        head, text = headline(lines), " | ".join(ln.text for ln in lines)
        head = head if _alnum(head) >= 3 else ""
        self._offer = None
        if self._ref is None:  # the first view is where we start, not a change
            self._ref, self._ref_head, self._ref_text = thumb, head, text
            return None
        diff = self._frac(self._ref, thumb)
        if diff < self.min_change:
            return None
        if prev is not None and self._frac(prev, thumb) >= max(self.settle, 0.25 * diff):
            return None  # still moving: wait for the view to settle
        self._offer = (thumb, head, text)
        head_changed = bool(head) and similarity(head, self._ref_head) < 0.8
        text_changed = bool(text) and similarity(text, self._ref_text) < 0.5
        old = set(self._ref_text.split(" | ")) - {""}
        kept = len(old & {ln.text for ln in lines}) / len(old) if old else 0.0
        big = diff >= self.big_change and _corr(self._ref, thumb) < self.big_corr
        return ViewChange(head, body_lines(lines, head), layout_label(lines, height), diff, head_changed,
                          text_changed, big, kept, prominent(lines, height), list(lines))

    def anchor(self, thumb: np.ndarray, lines: list[TextLine]) -> None:
        """Measure changes from this view on (a new instruction starts from what is on screen now)."""
        self._prev = self._ref = thumb
        self._ref_head, self._ref_text = headline(lines), " | ".join(ln.text for ln in lines)
        self._offer = None

    def accept(self) -> None:
        """The last offered change was reported: it becomes the view later changes are measured against."""
        if self._offer is not None:
            self._ref, self._ref_head, self._ref_text = self._offer
            self._offer = None
