"""Shared fixtures for the training tests: tiny models and a small generated suite, built once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/tiny_models.py


@pytest.fixture(scope="session")
def tiny25(tmp_path_factory):
    from tiny_models import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny25"))


@pytest.fixture(scope="session")
def tiny3(tmp_path_factory):
    from tiny_models import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("tiny3"))


@pytest.fixture(scope="session")
def small_suite(tmp_path_factory):
    """Two short clips with queries and responses (one delegated), in the reference format."""
    from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite

    d = tmp_path_factory.mktemp("suite")
    make_suite(d, SuiteSpec(seed=3, clips=[ClipSpec("monitoring", 30), ClipSpec("delegation", 40)]))
    return d
