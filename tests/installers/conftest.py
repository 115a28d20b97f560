"""Fixtures for the installer tests: an Xvfb display of their own range (tests/xvfb_display.py)."""

from __future__ import annotations

import pytest

from tests.xvfb_display import xvfb_display


@pytest.fixture(scope="module")
def xvfb():
    with xvfb_display(300, 100, "make apt") as display:
        yield display
