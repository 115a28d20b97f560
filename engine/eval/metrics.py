"""Streaming interaction metrics, each from its published definition (seed_systems §2.4, §6).

Inputs are one clip's annotation (``Expected`` answer windows with key words) and the replies the
session actually made (every non-silent decision, with its tick):

- **SW-F1** (Streaming-Eval): per expected response with answer window W, TP = a reply inside W
  that contains the key words (each reply serves one window), FN = no such reply; FP = every reply
  outside all windows. ``SW-F1 = w_TP·TP / (w_TP·TP + w_FP·FP + w_FN·FN)``, w_TP = w_FN = 2,
  w_FP = 0.2. Replies inside a window that do not match are neither TP nor FP (as published). An
  expected item marked ``delegate`` is matched only by a reply that delegated.
- **PO hit rate** (StreamingBench proactive output): the model is polled from the query time (or
  just after the previous item's tolerance) to t*+4; its first reply there is its output time, a hit
  when ``|t_out − t*| ≤ 2``. Timing only, as in the benchmark (the content is fixed by the prompt).
- **PAUC-style earliness** (ProactiveVideoQA): over each gold span the step curve of the
  correctness of the *accumulated* replies so far (exact key-word match as the judge, 0 or 1;
  0 before the first reply), its area normalised by the span length; reply times are shrunk toward
  the span start by ω (t' = s + ω·(t − s), ω = 0.5 as published) so lateness costs less than silence.
- **Duplicate-reply rate** (ProactiveVideoQA's "duplicate", judged there by an LLM): the share of
  replies that add nothing to an *earlier* reply of the same clip — every content word already said
  in one earlier reply, or near-identical text (similarity ≥ 0.9). Shared templates ("Now on
  screen: X") are not duplicates when X is new, and neither is the reply that answers its own
  expected response (the ground truth says a new answer was due there, e.g. a second corner kick).
  The trap: PAUC-style scores reward spam.
- **False alarms per minute of silence**: FP / (seconds outside every window / 60).
- **Tick latency** p50/p95 of the session's per-tick total latency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from engine.eval.scenarios import Expected
from engine.protocol import similarity

W_TP, W_FN, W_FP = 2.0, 2.0, 0.2
PO_TOLERANCE_S = 2.0
PO_POLL_AFTER_S = 4.0
PAUC_OMEGA = 0.5
DUPLICATE_SIMILARITY = 0.9


@dataclass(frozen=True)
class Reply:
    t: int
    text: str
    delegate: bool = False  # the decision handed a question to the brain


def _norm(s: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", s.lower()).strip() + " "


def keywords_match(text: str, keywords: list[str]) -> bool:
    """Every key word entry must occur as whole words; ``a|b`` accepts either alternative."""
    n = _norm(text)
    return all(any(_norm(alt) in n for alt in kw.split("|") if alt.strip()) for kw in keywords)


def expected_from_annotation(ann: dict) -> list[Expected]:
    return [Expected(r.get("content", ""), int(float(r["time"])), tuple(int(x) for x in r["window"]),
                     list(r.get("keywords", [])), bool(r.get("delegate", False))) for r in ann.get("response", [])]


def question_times(ann: dict) -> list[int]:
    return sorted(int(float(q["time"])) for q in ann.get("question", []))


def _in(t: int, w: tuple[int, int]) -> bool:
    return w[0] <= t <= w[1]


# --- SW-F1 ----------------------------------------------------------------------------------------
def match(expected: list[Expected], replies: list[Reply]) -> tuple[int, int, int, list[int | None]]:
    """(TP, FP, FN, matched reply index per expected). Windows are matched in time order; a reply
    serves at most one window."""
    used: set[int] = set()
    matched: list[int | None] = []
    for e in sorted(expected, key=lambda e: e.window[0]):
        hit = None
        for i, r in enumerate(replies):
            if (i not in used and _in(r.t, e.window) and keywords_match(r.text, e.keywords)
                    and (r.delegate or not e.delegate)):  # a delegate item needs a delegated reply
                hit = i
                break
        if hit is not None:
            used.add(hit)
        matched.append(hit)
    tp = sum(m is not None for m in matched)
    fp = sum(1 for r in replies if not any(_in(r.t, e.window) for e in expected))
    return tp, fp, len(expected) - tp, matched


def sw_f1(tp: float, fp: float, fn: float) -> float | None:
    den = W_TP * tp + W_FP * fp + W_FN * fn
    return None if den == 0 else W_TP * tp / den


# --- StreamingBench proactive output -------------------------------------------------------------
def po_hits(expected: list[Expected], replies: list[Reply], questions: list[int]) -> list[bool]:
    hits, prev = [], None
    for e in sorted(expected, key=lambda e: e.time):
        asked = max([q for q in questions if q <= e.time], default=0)
        start = asked if prev is None else max(asked, prev + PO_TOLERANCE_S + 1)
        outs = [r.t for r in replies if start <= r.t <= e.time + PO_POLL_AFTER_S]
        hits.append(bool(outs) and abs(outs[0] - e.time) <= PO_TOLERANCE_S)
        prev = e.time
    return hits


# --- PAUC-style earliness -------------------------------------------------------------------------
def pauc(e: Expected, replies: list[Reply], omega: float = PAUC_OMEGA) -> float:
    """Area under the accumulated-correctness step curve over the span [s, e+1), normalised to [0, 1]."""
    s, end = e.window[0], e.window[1] + 1
    inside = sorted((r for r in replies if _in(r.t, e.window)), key=lambda r: r.t)
    area, text = 0.0, ""
    for r in inside:
        text += " " + r.text
        if keywords_match(text, e.keywords):  # correct from this reply's (shrunk) time to the span end
            area = end - (s + omega * (r.t - s))
            break
    return area / (end - s)


# --- duplicates, false alarms, latency ------------------------------------------------------------
_FILLER = set("a an the is are was were be it its this that now on in at of to and or i you we here there "
              "has have had just".split())


def _content(text: str) -> set[str]:
    return {w for w in _norm(text).split() if w not in _FILLER}


def duplicates(replies: list[Reply], threshold: float = DUPLICATE_SIMILARITY, answers: set[int] = frozenset()) -> int:
    """Replies whose content words were all said in one earlier reply, or that nearly equal one;
    ``answers`` holds the indices of replies matched to an expected response (never duplicates)."""
    seen = [(_content(r.text), r.text) for r in replies]
    return sum(1 for i, (words, text) in enumerate(seen)
               if i not in answers and any(words <= w or similarity(text, t) >= threshold for w, t in seen[:i]))


def silent_seconds(expected: list[Expected], duration: int) -> int:
    covered = set()
    for e in expected:
        covered.update(range(max(0, e.window[0]), min(duration, e.window[1] + 1)))
    return duration - len(covered)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


@dataclass
class ClipScore:
    """Counts for one clip; suite figures are computed from summed counts (micro averages)."""

    name: str = ""
    family: str = ""
    duration: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    po_hits: int = 0
    po_total: int = 0
    pauc_sum: float = 0.0
    replies: int = 0
    duplicates: int = 0
    silent_s: int = 0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def sw_f1(self) -> float | None:
        return sw_f1(self.tp, self.fp, self.fn)


def score_clip(ann: dict, replies: list[Reply], latencies_ms: list[float] | None = None) -> ClipScore:
    exp = expected_from_annotation(ann)
    duration = int(ann.get("duration", 0))
    tp, fp, fn, matched = match(exp, replies)
    hits = po_hits(exp, replies, question_times(ann))
    return ClipScore(
        name=ann.get("video_name", ""), family=ann.get("task_type", ""), duration=duration, tp=tp, fp=fp, fn=fn,
        po_hits=sum(hits), po_total=len(hits), pauc_sum=sum(pauc(e, replies) for e in exp), replies=len(replies),
        duplicates=duplicates(replies, answers={m for m in matched if m is not None}), silent_s=silent_seconds(exp, duration), latencies_ms=list(latencies_ms or []),
    )


def summarize(scores: list[ClipScore]) -> dict:
    """Suite figures from summed counts (micro averages); None where a figure has no denominator."""
    tp, fp, fn = (sum(getattr(s, k) for s in scores) for k in ("tp", "fp", "fn"))
    po_total = sum(s.po_total for s in scores)
    n_exp = tp + fn
    replies = sum(s.replies for s in scores)
    silent_min = sum(s.silent_s for s in scores) / 60.0
    lat = [x for s in scores for x in s.latencies_ms]
    f = sw_f1(tp, fp, fn)
    return {
        "clips": len(scores), "tp": tp, "fp": fp, "fn": fn,
        "sw_f1": None if f is None else round(f, 4),
        "po_hit_rate": round(sum(s.po_hits for s in scores) / po_total, 4) if po_total else None,
        "pauc": round(sum(s.pauc_sum for s in scores) / n_exp, 4) if n_exp else None,
        "replies": replies,
        "duplicate_rate": round(sum(s.duplicates for s in scores) / replies, 4) if replies else 0.0,
        "false_alarms_per_min": round(fp / silent_min, 4) if silent_min else None,
        "tick_p50_ms": None if not lat else round(percentile(lat, 50), 2),
        "tick_p95_ms": None if not lat else round(percentile(lat, 95), 2),
        "tick_p99_ms": None if not lat else round(percentile(lat, 99), 2),
        "tick_max_ms": None if not lat else round(max(lat), 2),
    }
