import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.protocol import Decision, Talkativeness, TalkOptions, normalize

MARKERS = ["</silence>", "</response>", "</delegation>", "<delegation>", "<think>", "</think>", "\n", " ",
           "<|im_end|>", "[User Query (IMPORTANT — follow this instruction)]"]


@pytest.mark.parametrize(
    ("raw", "action", "text", "query"),
    [
        ("", "silence", "", ""),
        ("   \n ", "silence", "", ""),
        ("</silence>", "silence", "", ""),
        ("</silence> but also </response> hi", "silence", "", ""),
        ("</response> The slide changed to Memory.", "response", "The slide changed to Memory.", ""),
        ("</response> line one\nline two", "response", "line one", ""),
        ("<think>hmm</think></response> ok", "response", "ok", ""),
        ("<think>unterminated </response> x", "silence", "", ""),
        ("Just a sentence\nand more", "response", "Just a sentence", ""),
        ("</response> Let me check. </delegation> What is the GDP?", "delegate", "Let me check.", "What is the GDP?"),
        ("</response> hold on <delegation> why?", "delegate", "hold on", "why?"),
        ("</response> </silence> hi", "response", "hi", ""),
        ("</response>", "silence", "", ""),
        ("</response> ok<|im_end|>", "response", "ok", ""),
    ],
)
def test_normalize_table(raw, action, text, query):
    d = normalize(raw)
    assert (d.action, d.text, d.delegate_query) == (action, text, query)


def test_empty_delegate_question_falls_back_to_standing_query():
    d = normalize("</response> One moment. </delegation>  ", standing_query="count the red cars")
    assert d.action == "delegate" and d.delegate_query == "count the red cars"
    # no standing query either: keep the note as a plain reply instead of asking the brain nothing
    d = normalize("</response> One moment. </delegation>")
    assert d.action == "response" and d.text == "One moment."


def test_canonical_round_trip():
    for raw in ["</silence>", "</response> hi there", "</response> wait </delegation> why is the sky blue"]:
        d = normalize(raw)
        assert normalize(d.canonical()) == Decision(d.action, d.text, d.delegate_query, raw=d.canonical())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(MARKERS), st.text(max_size=20)), max_size=12).map("".join),
       st.text(max_size=30))
def test_normalize_is_total(raw, standing):
    d = normalize(raw, standing)
    assert d.action in ("silence", "response", "delegate")
    assert "\n" not in d.text
    for marker in ("</silence>", "</response>", "</delegation>", "<delegation>"):
        assert marker not in d.text
    if d.action == "silence":
        assert d.text == "" and d.delegate_query == ""
    if d.action == "response":
        assert d.text
    if d.action == "delegate":
        assert d.delegate_query
    # the canonical form is a fixed point of normalisation
    again = normalize(d.canonical(), standing)
    assert (again.action, again.text, again.delegate_query) == (d.action, d.text, d.delegate_query)


@given(st.binary(max_size=40))
def test_normalize_never_raises_on_non_text(data):
    assert normalize(data.decode("utf-8", "replace")).action in ("silence", "response", "delegate")
    assert normalize(None).action == "silence"


def test_dedup_turns_near_repeat_into_silence():
    talk = Talkativeness(TalkOptions(dedup_threshold=0.9))
    first = talk.apply(normalize("</response> The price is 20 dollars."), 1, True)
    again = talk.apply(normalize("</response> The price is 20 dollars!"), 2, True)
    other = talk.apply(normalize("</response> Item is sold out."), 3, True)
    assert first.action == "response"
    assert again.action == "silence" and again.reason == "duplicate"
    assert other.action == "response"


def test_the_same_question_is_not_handed_over_twice_but_a_new_one_is():
    talk = Talkativeness(TalkOptions(dedup_threshold=0.9))
    first = talk.apply(normalize("</response> Let me check. </delegation> What is 48 times 52?"), 5, True)
    again = talk.apply(normalize("</response> One moment. </delegation> What is 48 times 52?"), 9, True)
    close = talk.apply(normalize("</response> Let me check. </delegation> What is 48 times 53?"), 20, True)
    assert first.action == "delegate"
    assert again.action == "silence" and again.reason == "duplicate"  # word for word, case and punctuation aside
    assert close.action == "delegate"  # one number apart is another task, and the same note may say it
    off = Talkativeness(TalkOptions(dedup_threshold=1.01))  # dedup off: every delegation passes
    assert all(off.apply(normalize("</response> x </delegation> What is 2+2?"), t, True).action == "delegate"
               for t in (1, 2))


def test_cooldown_and_forced_silence():
    talk = Talkativeness(TalkOptions(cooldown_s=5, dedup_threshold=1.01))
    assert talk.apply(normalize("</response> a"), 0, True).action == "response"
    assert talk.apply(normalize("</response> b"), 3, True).reason == "cooldown"
    assert talk.apply(normalize("</response> c"), 5, True).action == "response"
    forced = Talkativeness(TalkOptions(force_silence_until_query=True))
    assert forced.apply(normalize("</response> hi"), 0, has_query=False).reason == "forced_silence"
    assert forced.apply(normalize("</response> hi"), 1, has_query=True).action == "response"


def test_forced_silence_is_off_by_default():
    assert TalkOptions().force_silence_until_query is False
    assert Talkativeness().apply(normalize("</response> hi"), 0, has_query=False).action == "response"
