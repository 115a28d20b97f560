"""The trainer: an interrupted run resumed with ``resume`` ends bit-identical to an uninterrupted one;
the final checkpoint loads in the torch backend unchanged."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from engine.backends.base import BackendConfig  # noqa: E402
from engine.backends.torch_vlm import TorchBackend  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.dataset import read_dataset  # noqa: E402
from training.tiny import build_tiny_model, dataset_texts  # noqa: E402
from training.trainer import train  # noqa: E402


@pytest.fixture(scope="module")
def one_clip(small_suite, tmp_path_factory):
    d = tmp_path_factory.mktemp("one")
    anns, _ = read_dataset(small_suite)
    a = next(x for x in anns if x.name.startswith("monitoring"))
    shutil.copy(a.path, d / a.path.name)
    shutil.copy(a.video, d / a.video.name)
    model = build_tiny_model(d.parent / (d.name + "-model"), dataset_texts(anns), hidden=64, layers=2)
    return d, model


def _cfg(one_clip, out, **kw):
    data, model = one_clip
    return TrainConfig(model=str(model), data=[str(data)], out=str(out), steps=5, lr=1e-3, warmup=2,
                       window=(12, 20), save_every=0, threads=1, seed=3, **kw)


@pytest.mark.slow
def test_resume_is_bit_exact(one_clip, tmp_path):
    full = train(_cfg(one_clip, tmp_path / "full"), progress=None, bar=False)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(one_clip, tmp_path / "cut"), progress=None, bar=False, stop_after=2)
    state = torch.load(tmp_path / "cut" / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 2
    resumed = train(_cfg(one_clip, tmp_path / "cut"), resume=True, progress=None, bar=False)
    a = torch.load(tmp_path / "full" / "checkpoint" / "state.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint" / "state.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    first = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    second = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"], r["episode"]) for r in first] == [(r["step"], r["loss"], r["episode"]) for r in second]
    assert first[0]["loss"] != first[-1]["loss"]  # it did train
    # the saved model is a Hugging Face checkpoint the torch backend loads unchanged
    for path in (full, resumed):
        b = TorchBackend()
        b.load(BackendConfig(model=str(path), device="cpu", dtype="float32", greedy=True))
        b.close()
