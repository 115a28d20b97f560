"""A still image (png/jpg) or a one-frame video given as --source is one second of stream: one record.
Seeking back to the first frame after opening used to fail on them, so they yielded no frame, no record
and exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugins.capture.video_file import VideoFileSource
from tests.faults.cli import presence


def _picture() -> np.ndarray:
    img = np.full((240, 320, 3), 200, np.uint8)
    cv2.putText(img, "HELLO", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 3)
    return img


def _write(path: Path) -> Path:
    if path.suffix == ".mp4":
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
        out.write(_picture())
        out.release()
    else:
        cv2.imwrite(str(path), _picture())
    return path


@pytest.mark.parametrize("name", ["still.png", "still.jpg", "one_frame.mp4"])
def test_a_single_picture_source_yields_its_frame_once(tmp_path, name):
    source = VideoFileSource(_write(tmp_path / name))
    source.open()
    frames = list(source.frames())
    assert [f.t for f in frames] == [0.0] and frames[0].pixels.shape == (240, 320, 3)
    assert source.end_reason == "finished" and source.duration_s >= 0


def test_presence_run_on_a_still_image_logs_one_record(tmp_path):
    log = tmp_path / "run.jsonl"
    r = presence("run", "--headless", "--fast", "--no-speak", "--quiet", "--source", str(_write(tmp_path / "still.png")),
                 "--backend", "heuristic", "--set", "heuristic.ocr=false", "--log", str(log),
                 "--store", str(tmp_path / "s.sqlite"))
    assert r.returncode == 0, r.stderr
    records = [e for e in map(json.loads, log.read_text().splitlines()) if e["type"] in ("decision", "skipped")]
    assert [(e["type"], e["t"]) for e in records] == [("decision", 0.0)]
