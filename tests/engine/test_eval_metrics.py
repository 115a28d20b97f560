"""Metric definitions on hand-made timelines whose scores are worked out by hand in the comments."""

import pytest

from engine.eval.metrics import (
    Reply,
    duplicates,
    keywords_match,
    match,
    pauc,
    po_hits,
    score_clip,
    silent_seconds,
    summarize,
    sw_f1,
)
from engine.eval.scenarios import Expected

E1 = Expected("There are five items now.", 10, (10, 14), ["five|5"])
E2 = Expected("Someone is at the door.", 30, (30, 33))


def test_keywords_are_whole_words_with_alternatives():
    assert keywords_match("There are 5 items", ["five|5"])
    assert not keywords_match("There are 15 items", ["five|5"])
    assert keywords_match("The kettle is SOLD-OUT now", ["sold out"])
    assert not keywords_match("sold", ["sold out"])
    assert keywords_match("anything", [])


def test_sw_f1_counts_and_weights():
    replies = [Reply(2, "hello"), Reply(11, "There are 5 items"), Reply(12, "five again"), Reply(40, "x")]
    tp, fp, fn, matched = match([E1, E2], replies)
    # 11 s answers E1; 12 s is inside E1's window (neither TP nor FP); 2 s and 40 s are FPs; E2 unanswered
    assert (tp, fp, fn) == (1, 2, 1)
    assert matched == [1, None]
    assert sw_f1(tp, fp, fn) == pytest.approx(2 / (2 + 0.4 + 2))


def test_sw_f1_wrong_content_in_window_is_a_miss_and_one_reply_serves_one_window():
    a = Expected("", 10, (10, 14), ["five"])
    b = Expected("", 12, (12, 16), ["five"])
    tp, fp, fn, _ = match([a, b], [Reply(13, "five"), Reply(11, "four")])
    assert (tp, fp, fn) == (1, 0, 1)


def test_sw_f1_spam_and_silence():
    # always respond for 60 s on two keyword-free windows covering 9 s: TP=2, FP=51
    spam = [Reply(t, f"line {t}") for t in range(60)]
    tp, fp, fn, _ = match([E2, Expected("", 10, (10, 14))], spam)
    assert (tp, fp, fn) == (2, 51, 0)
    assert sw_f1(tp, fp, fn) == pytest.approx(4 / (4 + 10.2))
    assert sw_f1(*match([E1, E2], [])[:3]) == 0.0
    assert sw_f1(0, 0, 0) is None  # a distractor clip answered with silence: nothing to score


def test_streamingbench_po_window_is_plus_minus_two_seconds():
    assert po_hits([E1, E2], [Reply(9, "a"), Reply(31, "b")], [0]) == [True, True]
    # the first reply after the query is the output time: an early reply at 2 s is a miss for E1
    assert po_hits([E1, E2], [Reply(2, "a"), Reply(11, "b")], [0]) == [False, False]
    assert po_hits([E1], [Reply(13, "late")], [0]) == [False]  # |13 − 10| = 3 > 2
    assert po_hits([E1], [Reply(12, "ok")], [0]) == [True]


def test_pauc_rewards_earliness_with_omega_half():
    assert pauc(E1, [Reply(10, "5 items")]) == pytest.approx(1.0)
    assert pauc(E1, [Reply(11, "5 items")]) == pytest.approx(4.5 / 5)  # t' = 10.5
    assert pauc(E1, [Reply(14, "5 items")]) == pytest.approx(3 / 5)  # t' = 12
    # accumulated replies: correct only once "5" has been said at 12 s → t' = 11 → 4/5
    assert pauc(E1, [Reply(10, "There are"), Reply(12, "5")]) == pytest.approx(4 / 5)
    assert pauc(E1, [Reply(10, "four")]) == 0.0
    assert pauc(E1, [Reply(9, "5 items")]) == 0.0  # before the span


def test_duplicates_and_silent_seconds():
    r = [Reply(1, "Now showing A"), Reply(5, "Now showing A"), Reply(9, "Something else"), Reply(20, "now showing a!")]
    assert duplicates(r) == 2
    # a shared template with new content is not a duplicate; a reply that only re-says old words is
    assert duplicates([Reply(1, "Now on screen: Deserts."), Reply(9, "Now on screen: Comets.")]) == 0
    assert duplicates([Reply(1, "The kettle is sold out now."), Reply(9, "Kettle sold out")]) == 1
    # a repeat that answers its own expected response (a second corner kick) is not a duplicate
    corners = [Reply(10, "New: CORNER KICK."), Reply(50, "New: CORNER KICK."), Reply(51, "New: CORNER KICK.")]
    assert duplicates(corners) == 2 and duplicates(corners, answers={0, 1}) == 1
    ann = {"duration": 60, "question": [], "response": [
        {"content": "c", "time": "10", "window": [10, 14], "keywords": ["corner"]},
        {"content": "c", "time": "50", "window": [50, 54], "keywords": ["corner"]}]}
    assert score_clip(ann, corners).duplicates == 1
    assert silent_seconds([E1, E2], 60) == 60 - 5 - 4


def test_score_and_summarize_micro_average():
    ann = {"video_name": "c", "task_type": "counting", "duration": 60, "question": [{"content": "q", "time": "0"}],
           "response": [{"content": "five", "time": "10", "window": [10, 14], "keywords": ["five|5"]}]}
    s1 = score_clip(ann, [Reply(10, "five items"), Reply(40, "noise")], [10.0, 20.0, 30.0, 1000.0])
    s2 = score_clip({**ann, "response": [], "video_name": "d"}, [], [10.0])
    total = summarize([s1, s2])
    assert (total["tp"], total["fp"], total["fn"]) == (1, 1, 0)
    assert total["sw_f1"] == pytest.approx(2 / 2.2, abs=1e-4)
    assert total["po_hit_rate"] == 1.0 and total["pauc"] == 1.0
    assert total["false_alarms_per_min"] == pytest.approx(1 / ((55 + 60) / 60), abs=1e-4)
    assert total["tick_p50_ms"] == 20.0 and total["duplicate_rate"] == 0.0
