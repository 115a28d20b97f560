"""One line on stderr: third-party libraries print nothing of their own. RapidOCR used to print a
coloured "[WARNING] … The text detection result is empty" for every blank frame, and OpenCV an
``[ERROR:0@…] … imread_ … can't read header`` line before Presence's own line for an unreadable GIF."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.perception import ocr
from tests.faults.cli import presence


def run(tmp_path, source: Path, *args: str) -> subprocess.CompletedProcess:
    return presence("run", "--headless", "--fast", "--no-speak", "--quiet", "--source", str(source),
                    "--log", str(tmp_path / "run.jsonl"), "--store", str(tmp_path / "s.sqlite"), *args, timeout=180)


@pytest.mark.skipif(not ocr.available(), reason="rapidocr (presence[ocr]) not installed")
@pytest.mark.parametrize("backend", ["heuristic", "lite"])  # ocr.read_lines and fast_ocr.read_lines
def test_ocr_on_a_blank_frame_prints_nothing(tmp_path, backend):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    r = run(tmp_path, blank, "--backend", backend)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    assert '"decision"' in (tmp_path / "run.jsonl").read_text()  # OCR really ran on a frame


def test_an_unreadable_image_is_our_one_line_only(tmp_path):
    gif = tmp_path / "broken.gif"
    gif.write_bytes(b"GIF89a" + bytes(50))  # a header OpenCV's GIF decoder rejects (and used to log)
    r = run(tmp_path, gif, "--backend", "heuristic", "--set", "heuristic.ocr=false")
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("presence: error: cannot decode"), r.stderr
