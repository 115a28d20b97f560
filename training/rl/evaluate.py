"""Held-out figures of a policy on windows: the suite metrics of ``engine.eval.metrics`` (SW-F1, PO hit,
duplicate rate, false alarms per minute, through ``score_clip`` / ``summarize``), the mean episode
reward and success rate, and the RLSD leakage probe (replies that state an item's key words before its
window opens, or carry the teacher hint's marker text)."""

from __future__ import annotations

from engine.eval import metrics
from engine.eval.metrics import Reply
from engine.protocol import SILENCE
from training.rl.config import RewardWeights
from training.rl.reward import replies_of, score
from training.rl.rollout import Roller, Window


def as_annotation(w: Window) -> dict:
    """The window as a metrics annotation (episode ticks; the query at tick 0)."""
    return {"duration": w.duration, "question": [{"time": "0"}],
            "response": [{"content": e.content, "time": str(e.time), "window": list(e.window),
                          "keywords": list(e.keywords), "delegate": e.delegate} for e in w.expected]}


def leaks(w: Window, replies: list[Reply], raw: list[str], marker: str) -> int:
    """Replies that state an item's key words before its window opens, or hold the hint marker."""
    n = sum(1 for r in replies if any(r.t < e.window[0] and e.keywords and metrics.keywords_match(r.text, e.keywords)
                                      for e in w.expected))
    return n + sum(1 for text in raw if marker and marker.lower() in text.lower())


def evaluate(roller: Roller, windows: list[Window], weights: RewardWeights | None = None, greedy: bool = True,
             seed: int = 0, marker: str = "Reference answers:") -> dict:
    scores, rewards, successes, leaked = [], [], [], 0
    for i, w in enumerate(windows):
        r = roller.roll(w, seed + i, greedy=greedy)
        dec = r.decisions()
        o = score(w.expected, dec, w.duration, weights)
        reps = replies_of(dec)
        scores.append(metrics.score_clip(as_annotation(w), reps))
        rewards.append(o.reward)
        successes.append(o.success)
        leaked += leaks(w, reps, [d for d in dec.values() if not d.strip().startswith(SILENCE)], marker)
    out = metrics.summarize(scores)
    n_rep = out["replies"]
    out.update(reward=round(sum(rewards) / len(rewards), 4), success=round(sum(successes) / len(successes), 4),
               leak_rate=round(leaked / n_rep, 4) if n_rep else 0.0)
    return out
