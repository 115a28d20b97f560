"""Instructions people type → the lite backend's plans, over the committed phrasing table."""

import tomllib
from pathlib import Path

import pytest

from engine.perception import instructions

TABLE = Path(__file__).parent / "data" / "instruction_phrasings.toml"
CASES = tomllib.loads(TABLE.read_text())["case"]


def _matches(case: dict) -> bool:
    plan = instructions.parse(case["text"])
    return all(getattr(plan, k) == v for k, v in case["plan"].items())


def test_table_is_large_and_well_formed():
    assert len(CASES) >= 60
    fields = set(instructions.Plan.__dataclass_fields__)
    for c in CASES:
        assert set(c["plan"]) <= fields, c
        assert c["plan"]["kind"] in ("timer", "count", "reach", "translate", "appear", "watch", "change", "narrate",
                                     "summarize", "ask", "any", "unknown")


def test_at_least_90_percent_read_right_and_every_miss_is_unknown():
    misses = [c for c in CASES if not _matches(c)]
    assert len(misses) <= 0.1 * len(CASES), [c["text"] for c in misses]
    wrong = [(c["text"], instructions.parse(c["text"]).kind) for c in misses
             if instructions.parse(c["text"]).kind != "unknown"]
    assert not wrong, f"a miss must be 'unknown', never another plan: {wrong}"


@pytest.mark.parametrize("text", ["tell me when the slide changes", "Summarize each slide"])
def test_the_instruction_box_examples_are_understood(text):
    # the UI's placeholder and examples (ui/main_window.py) must never read as something else
    assert _matches(next(c for c in CASES if c["text"] == text))


def test_unknown_is_not_a_catch_all_for_narration():
    # before: anything unread became "narrate"; now only narration verbs do
    assert instructions.parse("order me a pizza").kind == "unknown"
    assert instructions.parse("Narrate what happens.").kind == "narrate"
    assert instructions.parse("").kind == "none"


@pytest.mark.parametrize("text", ["in 30 s", "30s", "half a minute", "in a minute", "in 1m30s",
                                  "ping me when the slide changes", "warn me if the word ERROR appears",
                                  "warn me about any errors"])
def test_duration_forms_and_alert_verbs_are_read_exactly(text):
    # the forms people type for a timer or an alert: each must read as its table row, not as a near miss
    assert _matches(next(c for c in CASES if c["text"] == text))
