"""Answer a question about a recorded session from its events only: extractive, quoted, timed.

    "when was the SALE banner?"      → [01:40] Presence said: “A red banner says SALE.”
    "what happened around 10:32?"    → the non-silent events within a minute of 10:32, nearest first
    "what happened?"                 → a few of Presence's remarks, spread over the session
    "did a cat walk in?"             → Nothing like that was seen in this session.

A small local model asked to answer from retrieved text invents things that never appeared (and
echoes its prompt's tags), so ``presence ask`` quotes the matching events instead. A match needs the
question's specific words: generic ones ("appear", "screen", "happened") alone never count. Quoted
text is stripped of markup, so no tag or prompt fragment reaches the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.events import EventType

NOTHING = "Nothing like that was seen in this session."
KINDS = {EventType.DECISION: "Presence said", EventType.QUERY: "You asked", EventType.UTTERANCE: "You said",
         EventType.SUMMARY: "Summary", EventType.DELEGATE_RESULT: "The brain answered"}
_STOP = set("a an the is are was were be been being of to in on at for and or any anything every each me my you "
            "your it its this that these those what which who whom how when where why did does do done there here "
            "around about near please tell show shown say said ever some something someone have has had can could "
            "would should will i we us our they them then than from into with without after before during ago "
            "time times moment point minute minutes second seconds".split())
# words too common in any session to identify a moment by themselves
_GENERIC = set("happen happened happening appear appeared appearing screen slide page view new see seen saw "
               "shows show change changed changes go went come came get got look looked thing things "
               "presence session video stream event events".split())


@dataclass
class Match:
    t: float
    kind: str
    text: str
    score: float


def stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def words(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", text or "") if w.lower() not in _STOP]


def clean(text: str) -> str:
    """Event text fit to quote: markup (``</response>``, ``<untrusted>``) and line breaks removed."""
    t = re.sub(r"</?\s*[A-Za-z_][\w-]*\s*/?>", " ", text or "")
    return " ".join(t.split()).strip()


def event_text(e: dict) -> str:
    return clean(e.get("text") or e.get("summary") or e.get("answer") or e.get("result") or e.get("query") or "")


def stamp(t: float) -> str:
    s = int(t)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def find(question: str, events: list[dict], at: float | None = None, window_s: float = 60.0,
         limit: int = 5) -> list[Match]:
    """The events that answer ``question``: by its specific words, else (with ``at``) by time."""
    # with a time asked about, its digits ("10:32", "632s") name the time, not something seen
    specific = {w for w in words(question) if w not in _GENERIC and not (at is not None and re.fullmatch(r"\d+s?", w))}
    cands = []
    for e in events:
        if e.get("type") not in KINDS or (e["type"] == EventType.DECISION and e.get("action") == "silence"):
            continue
        text = event_text(e)
        if not text:
            continue
        cands.append((e, text))
    out: list[Match] = []
    if specific:
        # all that a short question names ("turn blue" is not "turned green"), two thirds of a long one
        need = len(specific) if len(specific) <= 2 else -(-2 * len(specific) // 3)
        for e, text in cands:
            hit = specific & set(words(text))
            if len(hit) >= need:
                near = 0.0 if at is None else min(1.0, abs(e["t"] - at) / 600.0)
                out.append(Match(float(e["t"]), e["type"], text, len(hit) / len(specific) - 0.1 * near))
        out.sort(key=lambda m: (-m.score, m.t))
    elif at is not None:
        out = [Match(float(e["t"]), e["type"], text, 1.0 - abs(e["t"] - at) / window_s)
               for e, text in cands if abs(e["t"] - at) <= window_s]
        out.sort(key=lambda m: (-m.score, m.t))
    else:  # "what happened?": what Presence said, spread over the session
        said = [(e, text) for e, text in cands if e["type"] in (EventType.DECISION, EventType.SUMMARY)]
        step = max(1, len(said) // limit)
        out = [Match(float(e["t"]), e["type"], text, 0.5) for e, text in said[::step]]
    return sorted(out[:limit], key=lambda m: m.t)


def answer(question: str, events: list[dict], at: float | None = None) -> str:
    """The quoted, timed events that answer ``question``, or :data:`NOTHING`."""
    found = find(question, events, at)
    if not found:
        return NOTHING
    lines = [f"[{stamp(m.t)}] {KINDS[m.kind]}: “{m.text}”" for m in found]
    return "\n".join(["From the session record:", *lines])
