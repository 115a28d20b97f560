"""What one DAMI-style answer reports, and how thinking is kept away from the user."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
PROBE_SUFFIX = "\n\nAnswer with the final answer only, no explanation."


@dataclass
class DamiAnswer:
    text: str  # the visible answer: thinking removed (what the digest and the user see)
    lam: float  # the λ the whole answer was generated at
    tokens: int  # generated tokens, thinking included (eos excluded)
    thought: bool  # whether the answer contained (or was prompted into) a thinking block
    uncertainty: float | None = None  # zero-shot u(q), when the conf estimator chose λ
    seconds: float = 0.0  # wall time of the whole ask (estimate + switch + generate)
    switch: str = ""  # how θ(λ) was reached: none | swap | rebuild | hit | miss


def strip_thinking(text: str, opened: bool) -> tuple[str, bool]:
    """(visible answer, whether it thought). ``opened``: the prompt already ended inside ``<think>``
    (the Thinking template pre-inserts it), so everything up to the first ``</think>`` is thinking. An
    unfinished thinking block yields an empty answer rather than leaking half a thought."""
    thought = opened or "<think>" in text.lower()
    if opened:
        text = text.split("</think>", 1)[1] if "</think>" in text else ""
    text = _BLOCK.sub("", text)
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text.strip(), thought


def probe_messages(messages: list[dict]) -> list[dict]:
    """The brain's messages with an "answer only" instruction appended to the last user turn."""
    out = [dict(m) for m in messages]
    out[-1]["content"] = str(out[-1]["content"]) + PROBE_SUFFIX
    return out
