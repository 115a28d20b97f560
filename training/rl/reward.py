"""The verifiable episode reward, built on ``engine.eval.metrics`` (one definition of TP/FP/FN,
SW-F1, PAUC earliness and false alarms; nothing is re-implemented here).

An episode covers ticks [0, duration); ``expected`` are its answer windows (episode ticks), each with
key words and its ``delegate`` flag; ``replies`` are the rollout's non-silent decisions.

    SW-F1      metrics.match + metrics.sw_f1 (TP only inside the window, with the key words; TP/FN 2,
               FP 0.2); a window with nothing expected and nothing said scores 1
    earliness  mean metrics.pauc over the expected items (0 when none)
    duplicate  every reply after the first inside one answer window
    false alarm  FP per minute of the episode's seconds outside every window (metrics.silent_seconds)
    format     share of decisions whose raw text is malformed (no leading marker, or an empty reply)
    delegation share of the expected items whose first in-window reply with the key words delegated
               iff the item is tagged (0 for an item nobody answered)
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.eval import metrics
from engine.eval.metrics import Reply
from engine.eval.scenarios import Expected
from engine.protocol import RESPONSE, SILENCE, normalize
from training.rl.config import RewardWeights


@dataclass
class Outcome:
    """What a verifier sees in one rollout; ``reward`` is the weighted sum, ``success`` the strict check
    NPO's gate and guides use (every item answered, nothing else said, nothing malformed)."""

    tp: int
    fp: int
    fn: int
    sw_f1: float
    earliness: float
    duplicates: int
    false_alarms_per_min: float
    format_rate: float
    delegation: float
    reward: float

    @property
    def success(self) -> bool:
        return self.fn == 0 and self.fp == 0 and self.duplicates == 0 and self.format_rate == 0


def malformed(raw: str) -> bool:
    """Output that does not read as a decision: no leading marker, or a marker with nothing valid."""
    body = raw.strip()
    if not body.startswith((SILENCE, RESPONSE)):
        return True
    return normalize(body).action == "silence" and not body.startswith(SILENCE)


def replies_of(decisions: dict[int, str]) -> list[Reply]:
    """The non-silent decisions (tick → raw text) as metric replies, in tick order."""
    out = []
    for t in sorted(decisions):
        d = normalize(decisions[t])
        if d.action != "silence":
            out.append(Reply(t, d.text + (" " + d.delegate_query if d.delegate_query else ""), d.action == "delegate"))
    return out


def score(expected: list[Expected], decisions: dict[int, str], duration: int,
          w: RewardWeights | None = None) -> Outcome:
    """The reward of one rollout: ``decisions`` maps every episode tick to its raw decision text."""
    w = w or RewardWeights()
    replies = replies_of(decisions)
    tp, fp, fn, _ = metrics.match(expected, replies)
    f1 = metrics.sw_f1(tp, fp, fn)
    f1 = 1.0 if f1 is None else f1  # nothing expected, nothing said: right
    early = sum(metrics.pauc(e, replies) for e in expected) / len(expected) if expected else 0.0
    dups = deleg_ok = 0
    for e in expected:
        inside = [r for r in replies if e.window[0] <= r.t <= e.window[1]]
        dups += max(0, len(inside) - 1)
        said = [r for r in inside if metrics.keywords_match(r.text, e.keywords)]
        deleg_ok += bool(said) and said[0].delegate == e.delegate
    silent_s = metrics.silent_seconds(expected, duration)
    fa = fp / (max(silent_s, 1) / 60.0)
    fmt = sum(malformed(d) for d in decisions.values()) / max(1, len(decisions))
    deleg = deleg_ok / len(expected) if expected else 0.0
    r = (w.sw_f1 * f1 + w.earliness * early - w.duplicate * dups - w.false_alarm * fa
         - w.format * fmt + w.delegation * deleg)
    return Outcome(tp, fp, fn, f1, early, dups, fa, fmt, deleg, r)
