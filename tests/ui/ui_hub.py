"""Load the loopback hub server from tests/app/test_models.py (tests are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def load():
    path = Path(__file__).resolve().parents[1] / "app" / "test_models.py"
    spec = importlib.util.spec_from_file_location("presence_test_hub", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
