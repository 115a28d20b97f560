"""The episode reward on hand-written traces (training/rl/reward.py over engine.eval.metrics)."""

from __future__ import annotations

import random

import pytest

from engine.eval.scenarios import Expected
from training.rl.config import RewardWeights
from training.rl.reward import malformed, score

N = 12
X = Expected("X", 5, (5, 7), ["X"], False)
H = Expected("hard </delegation> H", 5, (5, 7), ["H"], True)
SIL = "</silence>"


def trace(**at) -> dict[int, str]:
    """Silence everywhere but the given ticks (t5="</response> X")."""
    d = {t: SIL for t in range(N)}
    d.update({int(k[1:]): v for k, v in at.items()})
    return d


def test_silence_scores_zero_when_an_item_is_due():
    o = score([X], trace(), N)
    assert (o.tp, o.fp, o.fn, o.duplicates) == (0, 0, 1, 0)
    assert o.reward == 0.0 and not o.success


def test_nothing_due_and_nothing_said_is_a_success():
    o = score([], trace(), N)
    assert o.sw_f1 == 1.0 and o.success and o.reward == 1.0


def test_true_positive_on_time():
    o = score([X], trace(t5="</response> X"), N)
    assert (o.tp, o.fp, o.fn) == (1, 0, 0)
    assert o.earliness == 1.0 and o.delegation == 1.0 and o.success
    assert o.reward == pytest.approx(1.0 + 0.5 * 1.0 + 0.5 * 1.0)


def test_late_true_positive_earns_less_than_an_early_one():
    late = score([X], trace(t7="</response> X"), N)
    assert late.tp == 1
    assert late.earliness == pytest.approx((8 - (5 + 0.5 * 2)) / 3)  # PAUC with ω = 0.5
    assert late.reward < score([X], trace(t5="</response> X"), N).reward


def test_reply_without_key_words_is_no_true_positive_and_no_false_positive():
    o = score([X], trace(t5="</response> something else"), N)
    assert (o.tp, o.fp, o.fn) == (0, 0, 1)
    assert o.delegation == 0.0 and o.reward == 0.0


def test_false_positive_outside_every_window():
    o = score([X], trace(t1="</response> X"), N)
    assert (o.tp, o.fp, o.fn) == (0, 1, 1)
    silent_minutes = (N - 3) / 60
    assert o.false_alarms_per_min == pytest.approx(1 / silent_minutes)
    assert o.reward == pytest.approx(-0.02 / silent_minutes)


def test_duplicate_inside_an_answered_window_costs():
    once = score([X], trace(t5="</response> X"), N)
    twice = score([X], trace(t5="</response> X", t6="</response> X again"), N)
    assert twice.tp == 1 and twice.duplicates == 1 and not twice.success
    assert twice.reward == pytest.approx(once.reward - 0.5)


def test_malformed_output_costs_per_decision():
    assert malformed("X appeared") and malformed("</response>") and malformed("") and malformed("hello </silence>")
    assert not malformed("</silence>") and not malformed("</response> X") and not malformed(
        "</response> hard </delegation> H")
    o = score([X], trace(t5="X"), N)  # readable as a reply, but not in the protocol
    assert o.tp == 1 and o.format_rate == pytest.approx(1 / N) and not o.success
    assert o.reward == pytest.approx(2.0 - 1.0 / N)


def test_delegation_must_match_the_annotation():
    right = score([H], trace(t5="</response> hard </delegation> H"), N)
    assert right.tp == 1 and right.delegation == 1.0
    undelegated = score([H], trace(t5="</response> H"), N)  # a delegate item needs a delegated reply
    assert undelegated.tp == 0 and undelegated.delegation == 0.0
    over = score([X], trace(t5="</response> note </delegation> X"), N)  # delegating what was not tagged
    assert over.tp == 1 and over.delegation == 0.0
    assert right.reward > undelegated.reward and score([X], trace(t5="</response> X"), N).reward > over.reward


def test_weights_are_configurable():
    w = RewardWeights(sw_f1=0, earliness=0, duplicate=0, false_alarm=0, format=0, delegation=1)
    assert score([X], trace(t5="</response> X"), N, w).reward == 1.0


def _episode(rng: random.Random) -> list[Expected]:
    t = rng.randint(2, N - 3)
    e = rng.choice([X, H])
    return [Expected(e.content, t, (t, t + 2), e.keywords, e.delegate)]


@pytest.mark.parametrize("policy", ["always", "guess"])
def test_always_and_guessing_score_below_silence(policy):
    """Defaults: replying every second (with the right words) or a plausible guess every second
    (the reply pool, at random) must earn less than staying silent, over many episodes."""
    rng = random.Random(0)
    pool = ["</response> X", "</response> H", "</response> hard </delegation> H", "</response> a"]
    total = {"silence": 0.0, policy: 0.0}
    for _ in range(200):
        exp = _episode(rng)
        key = exp[0].keywords[0]
        right = "</response> hard </delegation> H" if exp[0].delegate else f"</response> {key}"
        acts = {t: right if policy == "always" else rng.choice(pool) for t in range(N)}
        total[policy] += score(exp, acts, N).reward
        total["silence"] += score(exp, trace(), N).reward
    assert total[policy] < total["silence"]
