"""``presence train``: help, one-line errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "app.cli", "train", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("sub", ["sft", "export", "eval"])
def test_help(sub):
    r = _run(sub, "--help")
    assert r.returncode == 0 and "usage:" in r.stdout


def test_bad_dataset_is_one_line_exit_2(tmp_path):
    (tmp_path / "a.json").write_text('{"video_path": "missing.mp4"}')
    r = _run("sft", "--init-tiny", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "a.json: video_path" in lines[0]


def test_export_without_session_store_exit_2(tmp_path):
    r = _run("export", "--session", "nope", "--out", str(tmp_path / "ds"), "--store", str(tmp_path / "none.sqlite"))
    assert r.returncode == 2 and "nope" in r.stderr


def test_gguf_without_checkpoint_exit_4(tmp_path):
    r = _run("export", "--model", str(tmp_path), "--gguf", str(tmp_path / "g"))
    assert r.returncode == 4 and r.stderr.count("\n") == 1
