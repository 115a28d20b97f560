"""Read a named value off the screen's OCR lines ("the price", "the counter", "CPU") — no model.

    value_text(lines, "price")  → "$24.99"   (a money amount: on the line naming it or the next, else the first)
    number(lines, "counter")    → 100.0      (the first number after the name, or on the next line)
    number(lines, "")           → the number on the most prominent line that has one
"""

from __future__ import annotations

import re

from engine.perception.glossary import fold
from engine.perception.ocr import TextLine

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_MONEY = re.compile(r"[$€£]\s?\d+(?:[.,]\d{2})?|\d+[.,]\d{2}\s?[$€£]")
_PRICE_WORDS = {"price", "cost", "prices", "costs"}


def _naming(lines: list[TextLine], subject: str) -> int:
    """Index of the first line that names every word of ``subject``, or -1."""
    words = fold(subject).split()
    for i, ln in enumerate(lines):
        folded = f" {fold(ln.text)} "
        if words and all(f" {w}" in folded for w in words):
            return i
    return -1


def value_text(lines: list[TextLine], subject: str) -> str:
    """What the screen shows for ``subject``: the rest of the line naming it (or the next line), or ''."""
    is_price = bool(set(fold(subject).split()) & _PRICE_WORDS)
    i = _naming(lines, subject)
    if is_price:  # a price is a money amount: on the line naming it, the line after, else the first shown
        for ln in (lines[i: i + 2] if i >= 0 else []) + lines:
            m = _MONEY.search(ln.text)
            if m:
                return m.group(0).strip()
        return ""
    if i >= 0:
        rest = re.split(re.escape(fold(subject).split()[-1]), lines[i].text, maxsplit=1, flags=re.I)[-1].strip(" :=-")
        if rest:
            return rest
        if i + 1 < len(lines):
            return lines[i + 1].text.strip()
    return ""


def number(lines: list[TextLine], subject: str) -> float | None:
    """The number shown for ``subject`` (any prominent number when it is ''), or None."""
    if subject:
        text = value_text(lines, subject)
    else:
        with_numbers = [ln for ln in lines if _NUMBER.search(ln.text)]
        text = max(with_numbers, key=lambda ln: ln.height).text if with_numbers else ""
    m = _NUMBER.search(text.replace(",", "")) if text else None
    return float(m.group(0)) if m else None
