"""Work around a PySide6 6.12.0 bug on CPython < 3.12: every Qt method that returns void hands back
``None`` without a new reference, so each call takes one off None's refcount. A busy window makes
hundreds of thousands of such calls and the process dies with "Fatal Python error: none_dealloc"
(measured: 100 × QImage.setPixelColor → None's refcount −100). CPython 3.12+ makes None immortal,
which is what the wheel assumes; on 3.11 we give None a refcount no session can exhaust (2⁴⁰ calls)."""

from __future__ import annotations

import ctypes
import sys

_PINNED = False


def pin_none() -> None:
    global _PINNED
    if _PINNED or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    # ob_refcnt is the first field of every PyObject (non-debug builds)
    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40
    _PINNED = True
