"""Read a standing instruction into a small, deterministic plan for the ``lite`` backend.

    "Tell me when 30 seconds have passed." / "in 30 s" / "30s"  → timer(30)  ("half a minute", "1m30s", "in an hour")
    "Tell me when there are five items on the table."           → count(5)
    "Tell me when the counter reaches 100."                     → reach(subject="counter", target=100)
    "Translate any sign that appears into English."             → translate
    "Alert me when someone appears at the door."                → appear (a visual change from the calm scene)
    "Tell me when the Blue Kettle is sold out."                 → watch(subject="blue kettle", phrase="sold out")
    "Tell me when the word EMERGENCY appears."                  → watch(phrase="emergency")
    "Tell me when the slide changes."                           → change(subject="slide")
    "Summarize each slide."                                     → summarize(subject="slide")
    "Narrate what happens." / "Commentate the match…"           → narrate (speak when the view changes)
    "How much is the Coffee Mug?"                               → ask(words=[coffee, mug], price=True)
    "Tell me when the price drops or it sells out."             → any([change(price), watch(sold out)])
    "I'm following a talk. Tell me when the slide changes."     → change(slide) (a preamble sentence is context)
    anything else ("order me a pizza")                          → unknown (the user is told what works)

Every rule matches a whole intent, never a guess: an instruction no rule reads is ``unknown`` rather
than a plan that does something else. ``tests/engine/data/instruction_phrasings.toml`` holds the
phrasings (and the plans) this parser must get right.
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
VIEWS = ("slide", "page", "screen", "window", "view", "scene", "tab", "chapter", "picture", "image", "camera", "video",
         "feed", "display")
EXAMPLES = ("\"tell me when the slide changes\", \"summarize each slide\", \"tell me when the word DONE appears\", "
            "\"tell me in 30 s\", \"what is on screen?\"")

_TELL = r"(?:tell me|let me know|alert me|notify me|warn me|inform me|ping me|remind me|say something|say|shout)"
_WHEN = r"(?:when(?:ever)?|if|once|as soon as|the moment)"
# a unit ends where the letters end, so "1m30s" reads as 1 minute and 30 seconds
_UNIT = r"(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)(?![a-z])"
_DURATION = re.compile(_NUM + r"\s*" + _UNIT + r"(?:\s*(?:and\s+)?(\d+)\s*(?:s|secs?|seconds?)(?![a-z]))?", re.I)
_HALF = re.compile(r"\bhalf\s+(?:a|an)\s+min(?:ute)?\b|\b(a|one)\s+min(?:ute)?\s+and\s+a\s+half\b", re.I)
_TIMER_CTX = re.compile(r"\b(?:in|after|within|timer\s+(?:for|of)|countdown(?:\s+(?:for|of))?|wait)\s+"
                        + _NUM + r"\s*" + _UNIT + r"|" + _NUM + r"\s*" + _UNIT
                        + r".*\b(passed|elapsed|gone|up|over|have gone by|has gone by)\b", re.I)
_BARE_TAIL = r"(?:\s+(?:timer|countdown|please))?[.!]*"  # "30s", "30s timer", "5 min please"
_COUNT = re.compile(r"\bthere\s+are\s+" + _NUM + r"\b|\b" + _NUM
                    + r"\s+(?:items?|objects?|things)\b(?!.*\b(?:reach|hit)\w*\b)", re.I)
_REACH = re.compile(r"\b" + _WHEN + r"\s+(?:the\s+)?(?P<subj>[\w .'-]*?)\s*\b(?P<verb>reach(?:es)?|hits?|gets?\s+to|"
                    r"goes\s+(?:above|over|past|below|under)|rises\s+(?:above|over|past)|exceeds?|passes|"
                    r"(?:drops?|falls?|dips?)\s+(?:below|under|to)|goes\s+(?:below|under)|is\s+(?:above|over|below|under))\s+"
                    r"[$€£]?\s?(?P<n>\d+(?:[.,]\d+)?)\s*%?", re.I)
_TRANSLATE = re.compile(r"\btranslat|\bin\s+english\b|\bthe\s+english\s+for\b", re.I)
_SUMMARY = re.compile(r"\b(summar(?:y|ies|ize|ise|izing|ising)|sum\s+up|recap|gist|tl;?dr)\b"
                      r"|\bwhat\s+(?:is|'s)\s+(?:each|every)\s+\w+\s+about\b", re.I)
_VIEW = r"(" + "|".join(VIEWS) + r")s?"
_NEW_VIEW = re.compile(r"\b(?:each|every|any|a|the\s+next|another)\s+new\s+" + _VIEW + r"\b|\bnew\s+" + _VIEW
                       + r"(?:'s)?\s+title\b|\btitle\s+of\s+(?:each|every)\s+(?:new\s+)?" + _VIEW + r"\b", re.I)
_CHANGES = re.compile(r"\b" + _WHEN + r"?\s*(?:the\s+|a\s+|an\s+)?(?P<subj>[\w' ]{1,40}?)\s+(?:changes|changed|"
                      r"has\s+changed|is\s+changed|switches|switched|moves\s+on|advances|flips|updates|is\s+updated|"
                      r"(?:drops|falls|rises|goes\s+(?:up|down)|increases|decreases)\b(?!\s+(?:below|under|above|over|to)\b))\b",
                      re.I)
_NARRATE = re.compile(r"\b(narrat\w*|commentat\w*|commentary|describe|play[- ]by[- ]play|talk\s+me\s+through|"
                      r"walk\s+me\s+through|keep\s+me\s+(?:posted|updated|informed|in\s+the\s+loop)|"
                      r"what(?:'s|\s+is)\s+(?:going\s+on|happening)|what\s+(?:happens|changes)|call\s+out|"
                      r"as\s+it\s+happens|every\s+event)\b", re.I)
# without a question mark: a leading "when"/"if" starts an instruction ("When a sign appears, translate it")
_QUESTION = re.compile(r"^\s*(what|what's|whats|how|which|who|where|when\s+(?:did|was|were|is|does|do)|is|are|was|"
                       r"were|did|does|do|can|could|has|have|why)\b", re.I)
_READ = re.compile(r"^\s*(?:please\s+)?read\b", re.I)
_APPEAR_WHO = (r"someone|somebody|anyone|anybody|a\s+person|people|a\s+visitor|visitors|a\s+guest|something|"
               r"anything|motion|movement|an?\s+(?:car|vehicle|animal|dog|cat|bird|truck|bike|bicycle|man|woman|child|"
               r"kid|customer|intruder|delivery|package)")
_APPEAR = re.compile(r"\b(" + _APPEAR_WHO + r")\b.*?\b(appears?|arrives?|shows?\s+up|enters?|comes?\s+(?:in|to|into|"
                     r"through|by)|walks?\s+(?:in|into|by|past|up)|moves?|turns?\s+up|steps?\s+in|passes\s+by|"
                     r"(?:is|are)\s+(?:at|in)\s+the\s+door)\b", re.I)
_FAIL = re.compile(r"\b(fails?|failed|failing|failures?|crash(?:es|ed)?|breaks)\b", re.I)
_WATCH = re.compile(_TELL + r"\s+(?:me\s+)?" + _WHEN + r"\s+(?P<cond>.+?)[.!?]*$", re.I)
_ABOUT = re.compile(_TELL + r"\s+(?:me\s+)?(?:about|of)\s+(?:any|all|new|the)?\s*(?P<thing>[\w-]+)[.!]*$", re.I)
_SHOWS = (r"appears|shows\s+up|is\s+shown|is\s+displayed|comes\s+up|is\s+on\s+(?:the\s+)?screen|pops\s+up|"
          r"is\s+visible|turns\s+up")
_PHRASE = re.compile(r"^(?:the\s+|an?\s+)?(?:(?:word|text|phrase|message|words)\s+)?[\"'“‘]?(?P<p>.+?)[\"'”’]?\s+"
                     r"(?:" + _SHOWS + r")\b", re.I)
_SAYS = re.compile(r"^(?:it|the\s+screen|the\s+page|the\s+sign|the\s+display|the\s+status)\s+(?:says|reads|shows)\s+"
                   r"[\"'“‘]?(?P<p>.+?)[\"'”’]?$", re.I)
_IS_STATE = re.compile(r"^(?:the\s+)?(?P<subj>[\w' -]{1,40}?)\s+(?:is|are|goes|go|becomes|become|gets|get|turns|turn)"
                       r"\s+(?P<state>\w+)$", re.I)
_TEXTY = {"error", "errors", "warning", "warnings", "message", "notification", "popup", "pop-up", "banner", "alert",
          "dialog", "exception", "traceback"}
_VAGUE = {"", "it", "anything", "something", "any item", "an item", "everything", "they", "this", "that"}


def is_view(subject: str) -> bool:
    """Whether a change subject is the whole view ("slide", "camera feed"), not a value on it ("price")."""
    return any(w.rstrip("s") in VIEWS for w in subject.lower().split())


def parse_number(s: str) -> int:
    s = s.lower()
    return int(s) if s.isdigit() else NUMBERS.get(s, 0)


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9$.\-]+", text.lower()) if w not in STOP and len(w) > 1]


@dataclass
class Plan:
    kind: str  # timer | count | reach | translate | appear | watch | change | narrate | summarize | ask | any | unknown | none
    query: str = ""
    seconds: int = 0
    target: int = 0
    phrase: str = ""
    subject: str = ""
    words: list[str] = field(default_factory=list)
    price: bool = False
    below: bool = False  # reach: fire when the number drops below ``target`` (else: reaches or passes it)
    parts: list[Plan] = field(default_factory=list)  # any: each clause's plan; whichever fires speaks


def _seconds(num: str, unit: str, extra: str | None = None) -> int:
    n = parse_number(num) * {"m": 60, "h": 3600}.get(unit[0].lower(), 1)
    return n + (int(extra) if extra else 0)


def _timer(q: str) -> int:
    """Seconds of a duration instruction ("in 30 s", "30s", "after 1 minute 30 seconds"), or 0."""
    if _HALF.search(q):
        return 90 if _HALF.search(q).group(1) else 30
    bare = re.fullmatch(_DURATION.pattern + _BARE_TAIL, q.strip(), re.I)
    m = bare or (_DURATION.search(q) if _TIMER_CTX.search(q) else None)
    return _seconds(m.group(1), m.group(2), m.group(3)) if m else 0


def _subject(s: str) -> str:
    s = re.sub(r"^(?:the|a|an|my|this|that)\s+", "", s.strip().lower())
    return "" if s in _VAGUE else s


def _view(q: str) -> str:
    m = re.search(r"\b(" + "|".join(VIEWS) + r")s?\b", q, re.I)
    return m.group(1).lower() if m else ""


def _clean(p: str) -> str:
    return p.strip(" \"'“”‘’.!?").lower()


def _watch(q: str) -> Plan | None:
    """A word, phrase or state to watch for ("tell me when SOLD OUT appears", "…when the X is Y")."""
    about = _ABOUT.search(q)  # "warn me about any errors": a kind of screen message, by name
    thing = about.group("thing").lower() if about else ""
    if _FAIL.search(thing) or thing.rstrip("s") in _TEXTY:
        return Plan("watch", q, phrase="fail" if _FAIL.search(thing) else thing.rstrip("s"))
    m = _WATCH.search(q)
    if not m:
        return None
    cond = re.sub(r"\b(?:sells|sell|runs|run)\s+out\b(?:\s+of\s+stock)?", "is sold out", m.group("cond").strip(), flags=re.I)
    if _FAIL.search(cond):
        return Plan("watch", q, phrase="fail")
    p = _PHRASE.search(cond) or _SAYS.search(cond)
    if p:
        phrase = _clean(p.group("p"))
        if phrase in ("errors", "warnings"):  # one on screen is enough
            phrase = phrase[:-1]
        return Plan("watch", q, phrase=phrase)
    for state in STATES:
        s = re.search(r"^(?:the\s+)?(?P<subj>.*?)\s*\b(?:is|are|goes|go|becomes|become|gets|get)\s+"
                      + re.escape(state) + r"\b", cond, re.I)
        if s:
            return Plan("watch", q, phrase=state, subject=_subject(s.group("subj")))
    s = _IS_STATE.match(cond)
    if s and len(s.group("subj").split()) <= 3 and s.group("state").lower() not in ("on", "in", "at", "there"):
        return Plan("watch", q, phrase=s.group("state").lower(), subject=_subject(s.group("subj")))
    quoted = re.fullmatch(r"[\"'“‘](?P<p>[^\"'”’]+)[\"'”’]", cond)
    if quoted or (cond.isupper() and len(cond) >= 2):
        return Plan("watch", q, phrase=_clean(quoted.group("p") if quoted else cond))
    return None


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“'])")
_LEAD = re.compile(r"^(?P<lead>.*?\b" + _TELL + r"\s+(?:me\s+)?" + _WHEN + r")\s+(?P<rest>.+)$", re.I)
_JOIN = re.compile(r"\s*,\s*(?:(?:or|and)\s+)?(?:" + _WHEN + r"\s+)?|\s+(?:or|and)\s+(?:" + _WHEN + r"\s+)?", re.I)


def parse(query: str) -> Plan:
    """The plan for an instruction: its sentences that say what to do (a preamble is context), and in
    a sentence every clause joined by "or"/"and"/commas — one clause lite cannot follow makes it unknown."""
    q = " ".join((query or "").split()).replace("’", "'")
    if not q:
        return Plan("none")
    plans = [p for p in (_sentence(s) for s in _SENTENCE.split(q)) if p.kind != "unknown"]
    if not plans:
        return Plan("unknown", q)
    if len(plans) == 1:
        return plans[0]
    return Plan("any", q, parts=[x for p in plans for x in (p.parts or [p])])


def _sentence(q: str) -> Plan:
    m = _LEAD.match(q)
    clauses = [c for c in _JOIN.split(m.group("rest").rstrip(".!?")) if c.strip()] if m else []
    if len(clauses) < 2:
        return _clause(q)
    parts = [_clause(f"{m.group('lead')} {c.strip()}") for c in clauses]
    if any(p.kind == "unknown" for p in parts):
        return Plan("unknown", q)  # half an instruction is not followed silently: the user is told
    return Plan("any", q, parts=parts)


def _clause(q: str) -> Plan:
    seconds = _timer(q)
    if seconds > 0:
        return Plan("timer", q, seconds=seconds)
    if _SUMMARY.search(q):
        return Plan("summarize", q, subject=_view(q))
    m = _COUNT.search(q)
    if m:
        return Plan("count", q, target=parse_number(m.group(1) or m.group(2)))
    m = _REACH.search(q)
    if m:
        below = bool(re.search(r"below|under|drop|fall|dip", m.group("verb"), re.I))
        return Plan("reach", q, subject=_subject(m.group("subj")), target=int(float(m.group("n").replace(",", "."))),
                    below=below)
    if _TRANSLATE.search(q):
        return Plan("translate", q)
    m = _NEW_VIEW.search(q)
    if m:
        return Plan("change", q, subject=next(g for g in m.groups() if g).lower())
    m = _CHANGES.search(q)
    if m:
        subj = _subject(re.sub(r"^.*\b(?:when(?:ever)?|if|once|time|as soon as)\s+", "", m.group("subj"), flags=re.I))
        if not subj or re.search(r"\b(what|anything|something|everything)$", subj):
            return Plan("narrate", q)  # "tell me what changes", "describe anything that changes"
        if len(subj.split()) <= 3 and not re.search(r"\b(me|you|i|tell|say|let)\b", subj):
            return Plan("change", q, subject=subj)
    if _NARRATE.search(q):
        return Plan("narrate", q)
    if q.endswith("?") or _QUESTION.match(q) or _READ.match(q):
        return Plan("ask", q, words=content_words(q), price=bool(re.search(r"how much|price|cost", q, re.I)))
    if _APPEAR.search(q) and not re.search(r"\b(word|text|phrase)\b", q, re.I):
        return Plan("appear", q)
    plan = _watch(q)
    if plan is not None:
        return plan
    return Plan("unknown", q)
