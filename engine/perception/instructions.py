"""Read a standing instruction into a small, deterministic plan for the ``lite`` backend.

    "Tell me when 30 seconds have passed."            → timer(30)
    "Tell me when there are five items on the table." → count(5)
    "Translate any sign that appears into English."   → translate
    "Alert me when someone appears at the door."      → appear (a visual change from the calm scene)
    "Tell me when the Blue Kettle is sold out."       → watch(subject="blue kettle", phrase="sold out")
    "Tell me when the word EMERGENCY appears."        → watch(phrase="emergency")
    "How much is the Coffee Mug?"                     → ask(words=[coffee, mug], price=True)
    anything else ("Commentate the match…")           → narrate (speak when the readable text changes)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
           "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90}
_NUM = r"(\d+|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"
STATES = ["sold out", "out of stock", "in stock", "available", "on sale", "open", "closed", "finished", "done"]
STOP = set("a an the is are was were be been of to in on at for and or any anything every each me my you your "
           "it this that what which who how when where shown show showed tell let know please there here "
           "start beginning earlier before ago much many did does do".split())

_TIMER = re.compile(_NUM + r"\s*(second|sec|minute|min)s?\b.*\b(passed|elapsed|gone|up|over)\b|"
                    r"\b(?:in|after)\s+" + _NUM + r"\s*(second|sec|minute|min)s?\b", re.I)
_COUNT = re.compile(r"\bthere\s+are\s+" + _NUM + r"\b|\b(?:reaches|hits|gets to|count to)\s+" + _NUM + r"\b", re.I)
_APPEAR = re.compile(r"\b(someone|somebody|anyone|anybody|a person|people|something|anything|a visitor|motion"
                     r"|movement)\b.*\b(appears?|arrives?|shows? up|enters?|comes?|moves?|happens?)\b", re.I)
_WATCH = re.compile(r"(?:tell me|let me know|alert me|notify me|warn me|say)\s+(?:when|if|once|as soon as)\s+"
                    r"(?P<cond>.+?)[.!?]*$", re.I)
_PHRASE = re.compile(r"^(?:the\s+)?(?:(?:word|text|phrase|message)\s+)?[\"'“]?(?P<p>.+?)[\"'”]?\s+"
                     r"(?:appears|shows up|is shown|is displayed|comes up|is on screen|pops up)\b", re.I)
_QUESTION = re.compile(r"^\s*(what|how|which|who|where|when|is|are|did|does|do|can)\b.*", re.I)


def parse_number(s: str) -> int:
    s = s.lower()
    return int(s) if s.isdigit() else NUMBERS.get(s, 0)


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9$.\-]+", text.lower()) if w not in STOP and len(w) > 1]


@dataclass
class Plan:
    kind: str  # timer | count | translate | appear | watch | ask | narrate | none
    query: str = ""
    seconds: int = 0
    target: int = 0
    phrase: str = ""
    subject: str = ""
    words: list[str] = field(default_factory=list)
    price: bool = False


def parse(query: str) -> Plan:
    q = " ".join((query or "").split())
    if not q:
        return Plan("none")
    m = _TIMER.search(q)
    if m:
        num, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(5))
        n = parse_number(num) * (60 if unit.lower().startswith("min") else 1)
        if n > 0:
            return Plan("timer", q, seconds=n)
    m = _COUNT.search(q)
    if m:
        return Plan("count", q, target=parse_number(m.group(1) or m.group(2)))
    if re.search(r"\btranslat", q, re.I):
        return Plan("translate", q)
    if _APPEAR.search(q) and not re.search(r"\b(word|text|phrase)\b", q, re.I):
        return Plan("appear", q)
    m = _WATCH.search(q)
    if m:
        cond = m.group("cond")
        p = _PHRASE.search(cond)
        if p:
            return Plan("watch", q, phrase=p.group("p").strip().lower())
        for state in STATES:
            s = re.search(r"^(?:the\s+)?(?P<subj>.*?)\s*\b(?:is|are|goes|go|becomes|become|gets|get)\s+"
                          + re.escape(state) + r"\b", cond, re.I)
            if s:
                subj = s.group("subj").strip().lower()
                subj = "" if subj in ("anything", "something", "any item", "an item", "it") else subj
                return Plan("watch", q, phrase=state, subject=subj)
        return Plan("watch", q, phrase=cond.strip().lower())
    if q.endswith("?") or _QUESTION.match(q):
        return Plan("ask", q, words=content_words(q), price=bool(re.search(r"how much|price|cost", q, re.I)))
    return Plan("narrate", q)
