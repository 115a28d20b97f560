"""The per-second dataset format: round trip, expansion, and one-line errors for bad files."""

from __future__ import annotations

import json
import shutil

import pytest

from training.dataset import DatasetError, per_second, read_annotation, read_dataset, write_annotation


def test_suite_is_a_dataset_and_round_trips(small_suite, tmp_path):
    anns, errors = read_dataset(small_suite)
    assert errors == [] and len(anns) == 2
    for a in anns:
        copy = tmp_path / a.path.name
        shutil.copy(a.video, tmp_path / a.video.name)
        write_annotation(a, copy)
        b = read_annotation(copy)
        assert (b.duration, b.questions, b.responses, b.decisions()) == (a.duration, a.questions, a.responses,
                                                                         a.decisions())
        assert b.extra["task_type"] == a.extra["task_type"]  # the suite's own fields survive


def test_per_second_pairs_follow_the_reference(small_suite):
    anns, _ = read_dataset(small_suite)
    a = next(x for x in anns if any(r.delegate for r in x.responses))
    msgs = per_second(a)
    assert len(msgs) == 2 * a.duration
    q = a.questions[0]
    user = msgs[2 * q.t]["content"]
    assert user[0] == {"type": "text", "text": q.content} and user[1]["text"] == f"<{q.t}.0 seconds>"
    assert user[2]["type"] == "image" and user[2]["time"] == q.t
    assert msgs[2 * (q.t + 1)]["content"][0]["text"] == f"<{q.t + 1}.0 seconds>"  # the question only once
    d = next(r for r in a.responses if r.delegate)
    text = msgs[2 * d.t + 1]["content"]
    assert text.startswith("</response> ") and " </delegation> " in text
    silent = [m["content"] for m in msgs[1::2]].count("</silence>")
    assert silent == a.duration - len(a.responses)


def _bad_copy(small_suite, tmp_path, name, mutate):
    anns, _ = read_dataset(small_suite)
    src = next(a for a in anns if a.name.startswith("monitoring"))  # one plain (not delegated) response
    shutil.copy(src.video, tmp_path / src.video.name)
    data = json.loads(src.path.read_text())
    text = mutate(data)
    (tmp_path / name).write_text(text if isinstance(text, str) else json.dumps(data))
    return tmp_path / name


@pytest.mark.parametrize("mutate, field", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: d.update(video_path="gone.mp4"), "video_path: "),
    (lambda d: d["response"][0].update(time="9999"), "response[0].time: 9999s is past the video's end"),
    (lambda d: d["question"][0].update(content=""), "question[0].content: missing or empty"),
    (lambda d: d["response"][0].update(time="abc"), "response[0].time: not a number"),
    (lambda d: d["response"][0].update(delegate=True), "response[0].content: a delegated item"),
])
def test_bad_annotation_is_one_line_naming_file_and_field(small_suite, tmp_path, mutate, field):
    bad = _bad_copy(small_suite, tmp_path, "bad.json", mutate)
    with pytest.raises(DatasetError) as exc:
        read_annotation(bad)
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg and field in msg


def test_skip_bad_keeps_the_rest(small_suite, tmp_path):
    anns, _ = read_dataset(small_suite)
    for a in anns:
        shutil.copy(a.video, tmp_path / a.video.name)
        shutil.copy(a.path, tmp_path / a.path.name)
    (tmp_path / "zz_broken.json").write_text("[1, 2")
    with pytest.raises(DatasetError, match="zz_broken.json"):
        read_dataset(tmp_path)
    good, errors = read_dataset(tmp_path, skip_bad=True)
    assert len(good) == 2 and len(errors) == 1 and "zz_broken.json" in errors[0]
