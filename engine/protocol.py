"""The JoyAI decision protocol: what the model writes each second and how we read it.

The model writes exactly one of (DESIGN §3, seed_systems §1.3):

    </silence>
    </response> <one-line reply>
    </response> <short holding note> </delegation> <question for the brain>

``normalize`` turns *any* text into exactly one valid :class:`Decision` and never raises: models
emit think blocks, stray markers, several lines, or nothing at all. ``Talkativeness`` then applies
the user's settings (dedup of near-repeats, cooldown, forced silence) on top of the model's choice.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from engine.options import setting

SILENCE = "</silence>"
RESPONSE = "</response>"
DELEGATION = "</delegation>"
_DELEGATION_ANY = re.compile(r"</?delegation>")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_MARKER = re.compile(r"</silence>|</response>")
# Markers a model may leak into its line that must never reach the screen or the speaker.
_STRAY = re.compile(r"</?(silence|response|delegation)>|<\|[^|>]*\|>")

Action = Literal["silence", "response", "delegate"]


@dataclass(frozen=True)
class Decision:
    """One second's outcome.

    action: silence | response | delegate.
    text: the one line shown and spoken (empty for silence; the holding note for delegate).
    delegate_query: the question for the brain (delegate only).
    raw: what the model actually wrote, for the log.
    reason: why the harness changed the model's choice (``duplicate``, ``cooldown``,
        ``forced_silence``), empty when it did not.
    """

    action: Action
    text: str = ""
    delegate_query: str = ""
    raw: str = ""
    reason: str = ""

    def canonical(self) -> str:
        """The exact text committed to the model's context for this tick."""
        if self.action == "silence":
            return SILENCE
        if self.action == "delegate":
            return f"{RESPONSE} {self.text} {DELEGATION} {self.delegate_query}".strip()
        return f"{RESPONSE} {self.text}".strip()

    def silenced(self, reason: str) -> Decision:
        return Decision("silence", raw=self.raw, reason=reason)


def _clean_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return _STRAY.sub("", line).strip()


_PROTOCOL_LIKE = re.compile(r"<\s*/?\s*(silence|response|delegation|think|untrusted|summary)\s*>|<\|[^|>]*\|>",
                            re.IGNORECASE)
SCREEN_TEXT_LIMIT = 200  # characters of screen text a template may quote


def neutralize(text: str, limit: int = SCREEN_TEXT_LIMIT) -> str:
    """Screen text made safe to paste into a decision line: Unicode look-alikes folded (NFKC, so a
    fullwidth ``＜／ｒｅｓｐｏｎｓｅ＞`` is caught too), protocol markers and special tokens removed, one
    line, at most ``limit`` characters. A decision's action then comes from the backend's own logic,
    never from characters on the screen."""
    folded = unicodedata.normalize("NFKC", text or "")
    cleaned = _PROTOCOL_LIKE.sub(" ", folded)
    cleaned = " ".join(cleaned.replace("<", "‹").replace(">", "›").split())
    return cleaned[:limit].rstrip()


def normalize(raw: str | None, standing_query: str = "") -> Decision:
    """Read a model's raw output as one decision. Total: never raises, always valid.

    Rules (DESIGN §3): strip ``<think>…</think>``; empty → silence; the first marker wins; keep only
    the first line after ``</response>``; delegation is parsed from the raw text and an empty
    question falls back to the standing query; no marker at all → the first line is a response.
    """
    raw = raw if isinstance(raw, str) else ""
    body = _THINK.sub("", raw).replace("\r", "")
    if not body.strip():
        return Decision("silence", raw=raw)
    m = _MARKER.search(body)
    if m is None:
        text = _clean_line(body)
        return Decision("response", text=text, raw=raw) if text else Decision("silence", raw=raw)
    if m.group(0) == SILENCE:
        return Decision("silence", raw=raw)
    after = body[m.end():]
    d = _DELEGATION_ANY.search(after)
    if d is not None:
        note = _clean_line(after[: d.start()])
        question = _STRAY.sub("", after[d.end():]).strip()
        question = re.sub(r"\[User Query[^\]]*\]", "", question).strip()
        question = " ".join(question.split())[:2000] or " ".join(standing_query.split())[:2000]
        if not question:  # nothing to ask the brain: keep the note as an ordinary reply
            return Decision("response", text=note, raw=raw) if note else Decision("silence", raw=raw)
        return Decision("delegate", text=note, delegate_query=question, raw=raw)
    text = _clean_line(after)
    if not text:
        return Decision("silence", raw=raw)
    return Decision("response", text=text, raw=raw)


def similarity(a: str, b: str) -> float:
    """Case- and space-insensitive similarity ratio in [0, 1]."""
    na, nb = " ".join(a.lower().split()), " ".join(b.lower().split())
    if not na or not nb:
        return 0.0
    return difflib.SequenceMatcher(None, na, nb).ratio()


@dataclass
class TalkOptions:
    """How talkative Presence is. Defaults are documented in README and assets/default_config.toml.

    persona: a line added to the system prompt (e.g. "Speak only when something important happens").
    cooldown_s: minimum seconds between two spoken responses (0 = none).
    dedup_threshold: a response at least this similar to the previous one becomes silence (1.0 = off).
    silence_bias: logit bias added to the silence marker's first token where the backend supports it
        (positive = quieter).
    force_silence_until_query: stay silent until the first instruction (off by default: the reference
        turns it on and users mistake it for the model's own silence).
    """

    persona: str = setting("", "a line added to the system prompt (e.g. \"Speak only when something important happens\")")
    cooldown_s: float = setting(0.0, "minimum seconds between two spoken responses (0 = none)", ge=0.0, le=3600.0)
    dedup_threshold: float = setting(
        0.9, "a response at least this similar to the previous one becomes silence (1.0 = off)", ge=0.0, le=1.0)
    silence_bias: float = setting(
        0.0, "logit bias on the silence marker where the backend supports it (positive = quieter)", ge=-20.0, le=20.0)
    force_silence_until_query: bool = setting(False, "stay silent until the first instruction")


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"\w+", text.lower()))


class Talkativeness:
    """Applies the user's talk settings to the model's decision, tick by tick."""

    def __init__(self, options: TalkOptions | None = None):
        self.options = options or TalkOptions()
        self._last_text = ""
        self._last_question = ""
        self._last_spoken_t: float | None = None

    def apply(self, decision: Decision, t: float, has_query: bool) -> Decision:
        o = self.options
        if decision.action == "silence":
            return decision
        if o.force_silence_until_query and not has_query:
            return decision.silenced("forced_silence")
        if decision.action == "response":
            if self._last_text and similarity(decision.text, self._last_text) >= o.dedup_threshold:
                return decision.silenced("duplicate")
            if o.cooldown_s > 0 and self._last_spoken_t is not None and t - self._last_spoken_t < o.cooldown_s:
                return decision.silenced("cooldown")
        elif o.dedup_threshold <= 1.0 and self._last_question and \
                _words(decision.delegate_query) == _words(self._last_question):
            # the same question handed over again (the problem is still on screen): its holding note would be
            # said twice and the brain would solve it twice. Word for word, not by similarity: "48 times 52"
            # and "48 times 53" are two tasks.
            return decision.silenced("duplicate")
        self._last_text = decision.text or self._last_text
        self._last_question = decision.delegate_query or self._last_question
        self._last_spoken_t = t
        return decision
