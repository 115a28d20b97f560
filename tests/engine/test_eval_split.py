"""The delegation family, the ``delegate`` field, and the held-out content split."""

from __future__ import annotations

import pytest

from engine.eval import metrics, scenarios
from engine.eval.scenarios import FAMILIES, HELDOUT_EVERY, generate_clip


def test_delegation_family_emits_delegate_items():
    clip = generate_clip("delegation", 0, 90, seed=5)
    ann = clip.annotation(2, 5)
    assert ann["response"] and all(r["delegate"] is True for r in ann["response"])
    assert all(" </delegation> " in r["content"] for r in ann["response"])
    assert "delegate" not in generate_clip("monitoring", 0, 60, seed=5).annotation(2, 5)["response"][0]


def test_delegate_item_needs_a_delegated_reply():
    ann = generate_clip("delegation", 0, 90, seed=5).annotation(2, 5)
    t = int(ann["response"][0]["time"])
    plain = metrics.score_clip(ann, [metrics.Reply(t, "Let me check that.")])
    handed = metrics.score_clip(ann, [metrics.Reply(t, "Let me check that.", delegate=True)])
    assert plain.tp == 0 and handed.tp == 1


def _held(pool):
    return [x for i, x in enumerate(pool) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]


def _said(family, content, seeds=range(12)):
    """Everything a family's clips ask or expect, over several seeds."""
    out = []
    for s in seeds:
        c = generate_clip(family, 0, 120, seed=s, content=content)
        out += [q for _, q in c.questions] + [e.content for e in c.responses] + [k for e in c.responses for k in e.keywords]
    return " | ".join(out)


@pytest.mark.parametrize("family, pool, key", [
    ("lecture", scenarios.TOPICS, lambda x: x[0]),
    ("translation", scenarios.SIGNS, lambda x: x[1]),
    ("commentary", scenarios.EVENTS, lambda x: x[1].split("|")[0]),
    ("delegation", scenarios.PROBLEMS, lambda x: x[1]),
])
def test_heldout_quarter_never_appears_in_training_content(family, pool, key):
    held_items = _held(pool)
    kept = [key(x) for x in pool if x not in held_items]
    held = [key(x) for x in held_items if key(x) not in kept]  # e.g. SORTIE and SALIDA both mean "exit"
    train, heldout = _said(family, "train"), _said(family, "heldout")
    assert held and not any(h in train for h in held)
    kept_only = [k for k in kept if k not in {key(x) for x in held_items}]
    assert any(h in heldout for h in held) and not any(k in heldout for k in kept_only)


@pytest.mark.parametrize("family", sorted(scenarios.WORDINGS))
def test_heldout_wording_is_kept_out_of_training(family):
    held = scenarios.WORDINGS[family][HELDOUT_EVERY - 1].split("{")[0]
    assert held not in _said(family, "train", range(6))
    assert held in _said(family, "heldout", range(2))


def test_every_family_generates_in_every_split():
    for family in FAMILIES:
        for content in ("train", "heldout"):
            clip = generate_clip(family, 0, 90, seed=1, content=content)
            assert len(clip.screens) == 90


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="content must be one of"):
        generate_clip("lecture", 0, 60, seed=1, content="test")
