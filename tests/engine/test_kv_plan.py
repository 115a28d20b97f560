"""The layer plan: the dense-preference score, the JSON round trip, and `presence kv profile` end to end."""

from __future__ import annotations

import json

import pytest
import torch

from engine.kv.plan import LayerPlan, dense_score, plan_path_for


def test_dense_score_separates_peaked_from_uniform_attention():
    t, d = 400, 16
    key = torch.zeros(1, 1, t, d)
    uniform = dense_score(torch.zeros(1, 2, 32, d), key, 1.0)
    assert uniform > 0.9  # top 5% of keys holds ~5% of a flat distribution
    key[0, 0, 7, 0] = 1.0  # one key every query loves
    peaked = dense_score(torch.full((1, 2, 32, d), 0.0).index_fill_(-1, torch.tensor([0]), 50.0), key, 1.0)
    assert peaked < 0.01


def test_plan_json_round_trip_and_bad_file(tmp_path):
    plan = LayerPlan.from_scores([0.5, 0.1, 0.3, 0.05], threshold=0.2)
    assert plan.quantized_layers == [0, 2] and plan.sparse_layers == [1, 3]
    path = plan.save(tmp_path / "p.json")
    assert json.loads(path.read_text())["sparse_layers"] == [1, 3]
    assert LayerPlan.load(path).quantized_layers == [0, 2]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read KV layer plan"):
        LayerPlan.load(tmp_path / "bad.json")
    assert plan_path_for(tmp_path / "m.gguf").name == "m.kvplan.json"


def test_profile_command_writes_the_plan_beside_the_model(tmp_path, capsys):
    from app.cli import main
    from tests.tiny_models import build_tiny_qwen25vl

    model = build_tiny_qwen25vl(tmp_path / "m")
    text = tmp_path / "calib.txt"
    text.write_text("The slide shows a chart. A cat walks past the camera. " * 40)
    assert main(["kv", "profile", "--model", str(model), "--text", str(text), "--tokens", "256"]) == 0
    plan = LayerPlan.load(model / "presence_kv_plan.json")
    assert plan.num_layers == 2 and len(plan.scores) == 2 and all(0 <= s <= 1 for s in plan.scores)
    assert "quantized" in capsys.readouterr().out or plan.quantized_layers == []
    # the tailor cache built for this model picks the plan up from beside it
    from transformers import AutoConfig

    import engine.kv as kv

    cache = kv.make_cache("tailor", AutoConfig.from_pretrained(model), "cpu", model_path=str(model))
    assert [isinstance(x, kv.KiviLayer) for x in cache.layers] == [i in plan.quantized_layers for i in range(2)]


def test_profile_command_errors_are_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(["kv", "profile", "--model", str(tmp_path / "missing")]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
