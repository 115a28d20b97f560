"""Per-tick loss weights of the reference's weighted SFT (seed_systems §1.2).

The JoyAI release weights the assistant tokens of each second by what the decision is:

    a response onset (and a delegation, which is a response)  1.5
    the first silence of a silence run (e.g. right after a response)  1.0
    a repeated silence                                        0.6 (JoyAI 0.4, Streaming Harness 0.8)

Every second of a per-second dataset is one response (there are no multi-second responses), so
every response second is an onset. A dataset's own per-second multipliers (the corrections export
lowers the seconds the user only let stand) multiply these.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.protocol import SILENCE


@dataclass
class WeightConfig:
    """response: weight of a response / delegation second (reference 1.5).
    first_silence: the first silence after a response, or at the start (reference 1.0).
    repeated_silence: every further silence of a run (0.4–0.8; default 0.6, between JoyAI's 0.4 and
    Streaming Harness's 0.8).
    context: every token of the stream itself inside an episode's window (the user turns: perception
    hints, time markers, queries; never an image token). 0 in the reference recipe, which fine-tunes a
    pretrained VLM on its assistant tokens only. A model trained from scratch (training/tiny.py) has no
    heads that copy or compare earlier text — measured: trained on decisions alone it wrote the most common
    slide title whatever the hint said, and its answer rate did not depend on the turn — and predicting
    the stream's own text, in which every static screen's hint repeats second after second, is where it
    learns them (docs/training.md)."""

    response: float = 1.5
    first_silence: float = 1.0
    repeated_silence: float = 0.6
    context: float = 0.0

    def __post_init__(self) -> None:
        if not 0.4 <= self.repeated_silence <= 0.8:
            raise ValueError(f"repeated_silence must be 0.4–0.8 (the published range), got {self.repeated_silence}")
        if self.response <= 0 or self.first_silence <= 0:
            raise ValueError("response and first_silence weights must be > 0")
        if not 0.0 <= self.context <= 1.0:
            raise ValueError(f"context must be 0–1, got {self.context}")


def tick_weights(decisions: list[str], cfg: WeightConfig | None = None,
                 multipliers: dict[int, float] | None = None) -> list[float]:
    """One weight per second for the gold decision texts ``decisions``."""
    cfg = cfg or WeightConfig()
    out, prev_silent = [], False
    for t, d in enumerate(decisions):
        silent = d.strip() == SILENCE
        if not silent:
            w = cfg.response
        else:
            w = cfg.repeated_silence if prev_silent else cfg.first_silence
        prev_silent = silent
        out.append(w * (multipliers or {}).get(t, 1.0))
    return out
