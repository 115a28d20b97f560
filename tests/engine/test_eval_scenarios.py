"""The procedural suite: deterministic by seed, self-consistent ground truth, decodable clips."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.eval.clipsource import ClipSource
from engine.eval.metrics import keywords_match
from engine.eval.scenarios import (
    DEFAULT_CLIPS,
    FAMILIES,
    ClipSpec,
    SuiteSpec,
    generate_clip,
    load_spec,
    make_suite,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generator_is_deterministic_and_ground_truth_is_consistent(family):
    a, b = generate_clip(family, 0, 120, seed=7), generate_clip(family, 0, 120, seed=7)
    assert a.annotation(2, 7) == b.annotation(2, 7)
    assert all(np.array_equal(x, y) for x, y in zip(a.screens, b.screens, strict=True))
    assert len(a.screens) == 120 and a.screens[0].shape == (240, 320, 3)
    last_end = -1
    for e in sorted(a.responses, key=lambda e: e.window[0]):
        assert 0 <= e.window[0] <= e.time <= e.window[1] < 120 + 5
        assert e.window[0] > last_end, "answer windows must not overlap"
        last_end = e.window[1]
        assert keywords_match(e.content, e.keywords), (e.content, e.keywords)
    assert a.questions and all(0 <= t < 120 for t, _ in a.questions)
    if family == "distractor":
        assert a.responses == []  # the right answer is silence throughout


def test_seed_changes_the_clip():
    anns = {json.dumps(generate_clip("lecture", 0, 90, seed=s).annotation(2, 0)) for s in (1, 2, 3)}
    assert len(anns) == 3


def test_committed_suite_definition_matches_the_built_in_one():
    spec = load_spec(ROOT / "benchmarks" / "suite.toml")
    assert spec.clips == DEFAULT_CLIPS and spec.seed == 7
    assert min(c.duration for c in spec.clips) == 30 and max(c.duration for c in spec.clips) == 1800


def test_bad_spec_is_one_clear_error(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[[clip]]\nfamily = "juggling"\nduration = 60\n')
    with pytest.raises(ValueError, match="unknown family 'juggling'"):
        load_spec(p)


def test_make_suite_writes_decodable_clips_in_the_per_second_format(tmp_path):
    spec = SuiteSpec(seed=3, fps=2.0, clips=[ClipSpec("counting", 30), ClipSpec("time", 40)])
    manifest = json.loads(make_suite(tmp_path, spec).read_text())
    assert manifest["clips"] == ["counting_30s_00", "time_40s_00"]
    ann = json.loads((tmp_path / "counting_30s_00.json").read_text())
    assert set(ann) >= {"video_name", "video_path", "task_type", "question", "response", "duration"}
    assert all(isinstance(q["time"], str) and q["content"] for q in ann["question"])
    assert all(isinstance(r["time"], str) and len(r["window"]) == 2 for r in ann["response"])
    src = ClipSource(tmp_path / ann["video_path"])
    frames = list(src.frames())
    src.close()
    assert [int(f.t) for f in frames] == list(range(30))  # one frame per second, the last of each
    # the decoded picture is the generated screen (mp4v is lossy: compare loosely)
    clip = generate_clip("counting", 0, 30, seed=3)
    assert np.mean(np.abs(frames[29].pixels.astype(int) - clip.screens[29].astype(int))) < 6
