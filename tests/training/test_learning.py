"""The tiny interaction model learns when to speak, and the negative control does not.

A small Qwen2.5-VL-shaped model (training/tiny.py) is trained with weighted SFT on generated clips
(training seeds, the training share of every content pool) with perception hints on, then run on
held-out clips (other seeds) through the session loop with greedy decoding. The same run on
shuffled labels (each clip's answers moved to random seconds) is the negative control. Thresholds
were written before the test was first run (issue 17): trained ≥ always + 0.2, shuffled ≤ always + 0.05.
The first configuration (3 clips per family, 150 steps) failed them (held-out SW-F1 0.0: it keyed on the
time markers); this one (12 per family, 200 steps) is what passed. It takes several minutes on 2 cores
(over the suite's budget), so it runs only with PRESENCE_LEARNING_TEST=1.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rapidocr", reason="the model is trained and run with perception hints (OCR)")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.context import HintOptions  # noqa: E402
from engine.eval.baselines import BASELINES  # noqa: E402
from engine.eval.runner import run_suite  # noqa: E402
from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.dataset import read_dataset  # noqa: E402
from training.tiny import build_tiny_model, dataset_texts  # noqa: E402
from training.trainer import train  # noqa: E402

FAMILIES = ["monitoring", "delegation"]
DURATION = 30
TRAINED_MARGIN = 0.2  # held-out SW-F1 at least always + this (issue 17, written before the first run)
CONTROL_MARGIN = 0.05  # the shuffled-label run at most always + this
HINTS = HintOptions(perception_hints=True)


def _suite(path, seed, count):
    make_suite(path, SuiteSpec(seed=seed, content="train", clips=[ClipSpec(f, DURATION, count) for f in FAMILIES]))
    return path


def _sw_f1(suite, factory, name):
    run = run_suite(suite, factory, name, hints=HINTS if name == "torch" else None)
    return run.summary()["sw_f1"] or 0.0


def _torch(model):
    def make():
        b = TorchBackend()
        b.load(BackendConfig(model=str(model), device="cpu", dtype="float32", greedy=True))
        return b

    return make


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not os.environ.get("PRESENCE_LEARNING_TEST"),
                    reason="several minutes on 2 cores: set PRESENCE_LEARNING_TEST=1 to run it")
def test_tiny_model_learns_when_to_speak_and_shuffled_labels_do_not(tmp_path):
    data = _suite(tmp_path / "train", 11, 12)
    held = _suite(tmp_path / "held", 99, 2)
    anns, _ = read_dataset(data)
    init = build_tiny_model(tmp_path / "init", dataset_texts(anns), hidden=64, layers=2)
    scores = {}
    for name, shuffle in (("trained", False), ("shuffled", True)):
        cfg = TrainConfig(model=str(init), data=[str(data)], out=str(tmp_path / name), steps=STEPS, lr=3e-3, warmup=10,
                          window=(20, 30), save_every=0, threads=2, seed=0, hints=HINTS, shuffle_labels=shuffle)
        scores[name] = _sw_f1(held, _torch(train(cfg, progress=None, bar=False)), "torch")
    always = _sw_f1(held, BASELINES["always"], "always")
    assert scores["trained"] >= always + TRAINED_MARGIN, (scores, always)
    assert scores["shuffled"] <= always + CONTROL_MARGIN, (scores, always)


STEPS = 200
