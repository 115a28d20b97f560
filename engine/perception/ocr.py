"""OCR through rapidocr (optional extra ``ocr``; its PP-OCR models ship inside the wheel).

One engine per process, created lazily; ``available()`` tells whether rapidocr is installed.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass

import numpy as np

_engine = None
_lock = threading.Lock()


def available() -> bool:
    return importlib.util.find_spec("rapidocr") is not None


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    height: float  # box height in pixels: big text first when choosing a headline
    top: float


def quiet_engine(params: dict | None = None):
    """A RapidOCR engine that never writes to stderr. rapidocr logs through its own coloured console
    handler (``propagate`` off), e.g. a yellow "text detection result is empty" on every blank frame,
    and onnxruntime's default logger prints ``[W:onnxruntime…]`` lines: neither is Presence's one line
    on stderr, and what goes wrong in OCR reaches the session as the exception it raises."""
    import onnxruntime
    from rapidocr import RapidOCR

    onnxruntime.set_default_logger_severity(4)  # fatal only
    engine = RapidOCR(params={**(params or {}), "Global.log_level": "critical"})
    logging.getLogger("RapidOCR").setLevel(logging.CRITICAL + 1)  # RapidOCR() sets the level each time
    return engine


def _get_engine():
    global _engine
    with _lock:
        if _engine is None:
            _engine = quiet_engine()
        return _engine


def run_engine(engine, lock: threading.Lock, rgb: np.ndarray, min_score: float = 0.5) -> list[TextLine]:
    """Run a RapidOCR engine on an RGB uint8 [H, W, 3] frame: lines top to bottom, low scores dropped."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    with lock:  # the ONNX sessions are not documented as thread-safe
        out = engine(bgr)
    if out is None or out.txts is None:
        return []
    lines = []
    for box, text, score in zip(out.boxes, out.txts, out.scores, strict=False):
        if score < min_score or not text.strip():
            continue
        ys = [p[1] for p in box]
        lines.append(TextLine(text.strip(), float(score), float(max(ys) - min(ys)), float(min(ys))))
    lines.sort(key=lambda ln: ln.top)
    return lines


def read_lines(rgb: np.ndarray, min_score: float = 0.5) -> list[TextLine]:
    """Text lines in reading order (top to bottom). RGB uint8 [H, W, 3]."""
    if not available():
        return []
    return run_engine(_get_engine(), _lock, rgb, min_score)


def headline(lines: list[TextLine]) -> str:
    """The most prominent line: the tallest text, ties broken by position."""
    if not lines:
        return ""
    best = max(lines, key=lambda ln: (round(ln.height / 4), -ln.top))
    return best.text
