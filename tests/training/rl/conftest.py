"""A tiny SymbolStream model, built and briefly SFT'd once per session (training/rl/run.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ss_sft(tmp_path_factory):
    """(model dir, tokenizer) of the proxy after 150 SFT steps (seed 0)."""
    import torch

    from training.rl import symbolstream as ss
    from training.rl.run import make_symbolstream_sft

    torch.set_num_threads(1)
    path = make_symbolstream_sft(tmp_path_factory.mktemp("ss_sft") / "model", steps=150)
    assert ss.is_symbolstream(path)
    return path


@pytest.fixture()
def ss_model(ss_sft):
    from training.rl import symbolstream as ss

    model, tok = ss.load(ss_sft)
    return model, tok
