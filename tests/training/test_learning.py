"""A tiny model learns when to speak (slow): weighted SFT on generated monitoring clips, scored on
held-out clips with other seeds through the session loop, against the always-respond baseline; the same
run on shuffled labels is the negative control.

Thresholds, written before the test was first run: trained SW-F1 >= always + 0.2; shuffled-label
SW-F1 <= always + 0.05.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from engine.eval.baselines import AlwaysBackend  # noqa: E402
from engine.eval.runner import run_suite  # noqa: E402
from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.dataset import read_dataset  # noqa: E402
from training.tiny import build_tiny_model, dataset_texts  # noqa: E402
from training.trainer import train  # noqa: E402

MARGIN, CONTROL_MARGIN = 0.2, 0.05
FAMILY, DURATION, TRAIN_CLIPS, TEST_CLIPS, STEPS = "monitoring", 40, 32, 4, 400


def _greedy(model_dir):
    def make():
        b = TorchBackend()
        b.load(BackendConfig(model=str(model_dir), device="cpu", dtype="float32", greedy=True))
        return b

    return make


@pytest.mark.slow
def test_tiny_model_learns_when_to_speak_and_shuffled_labels_do_not(tmp_path):
    make_suite(tmp_path / "train", SuiteSpec(seed=11, content="train", clips=[ClipSpec(FAMILY, DURATION, TRAIN_CLIPS)]))
    make_suite(tmp_path / "test", SuiteSpec(seed=99, content="train", clips=[ClipSpec(FAMILY, DURATION, TEST_CLIPS)]))
    anns, _ = read_dataset(tmp_path / "train")
    init = build_tiny_model(tmp_path / "init", dataset_texts(anns))
    scores = {}
    for label, shuffle in (("trained", False), ("shuffled", True)):
        cfg = TrainConfig(model=str(init), data=[str(tmp_path / "train")], out=str(tmp_path / label), steps=STEPS,
                          lr=3e-3, warmup=10, window=(20, 40), save_every=0, threads=1, shuffle_labels=shuffle)
        model = train(cfg, progress=None, bar=False)
        scores[label] = run_suite(tmp_path / "test", _greedy(model), label).summary()["sw_f1"] or 0.0
    always = run_suite(tmp_path / "test", AlwaysBackend, "always").summary()["sw_f1"] or 0.0
    assert scores["trained"] >= always + MARGIN, (scores, always)
    assert scores["shuffled"] <= always + CONTROL_MARGIN, (scores, always)
