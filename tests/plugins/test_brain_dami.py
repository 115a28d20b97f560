"""The ``dami`` brain on a real tiny Qwen3 pair (random weights: mechanics, not answers)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.brain import BrainError  # noqa: E402
from engine.dami.answer import strip_thinking  # noqa: E402
from engine.dami.lam import BUCKETS, PrefEstimator  # noqa: E402
from engine.dami.tiny_pair import random_pair  # noqa: E402
from plugins.brain.dami import DamiBrain, DamiOptions  # noqa: E402

Q = "0123+4567"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return random_pair(tmp_path_factory.mktemp("dami_brain"))


def _opts(pair, **kw):
    return DamiOptions(instruct=str(pair.instruct), thinking=str(pair.thinking), max_new_tokens=6, **kw)


def _reference_tokens(pair, lam, template_dir):
    """Greedy tokens of θ(λ) built independently of the brain (direct interpolation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.brain import brain_messages
    from engine.dami.interp import interpolate_state

    mi = AutoModelForCausalLM.from_pretrained(pair.instruct, dtype=torch.float32)
    mt = AutoModelForCausalLM.from_pretrained(pair.thinking, dtype=torch.float32)
    mi.load_state_dict(interpolate_state(mi.state_dict(), mt.state_dict(), lam))
    tok = AutoTokenizer.from_pretrained(template_dir)
    prompt = tok.apply_chat_template(brain_messages(Q, ""), tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = mi.eval().generate(input_ids=ids, max_new_tokens=6, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
    return out[: out.index(tok.eos_token_id)] if tok.eos_token_id in out else out


def test_fixed_lambda_answers_and_reports_lambda_and_tokens(pair):
    brain = DamiBrain(_opts(pair, lam_mode="fixed", lam=0.3))
    text = brain.ask(Q, "", None, 30.0)
    assert isinstance(text, str)
    assert brain.last_lambda == 0.25  # snapped to a bucket
    assert brain.last_tokens == len(_reference_tokens(pair, 0.25, pair.instruct))
    assert brain.last.text == text and not brain.last.thought and brain.last.uncertainty is None


def test_thinking_template_from_half_and_thinking_never_shown(pair):
    brain = DamiBrain(_opts(pair, lam_mode="fixed", lam=0.5))
    brain.ask(Q, "", None, 30.0)
    assert brain.last.thought  # the Thinking template pre-inserted <think>
    assert brain.last_tokens == len(_reference_tokens(pair, 0.5, pair.thinking))
    assert strip_thinking("4+8+0=12,</think>06912", opened=True) == ("06912", True)
    assert strip_thinking("4+8+0=12,", opened=True) == ("", True)  # unfinished thinking leaks nothing
    assert strip_thinking("a<think>x</think>b<think>y", opened=False) == ("ab", True)


def test_swap_and_bucket_strategies_give_the_same_answer(pair):
    a = DamiBrain(_opts(pair, lam_mode="fixed", lam=0.625, strategy="swap"))
    b = DamiBrain(_opts(pair, lam_mode="fixed", lam=0.625, strategy="buckets", cache_size=1))
    assert a.answer(Q, "").text == b.answer(Q, "").text and a.last_tokens == b.last_tokens
    assert b.last.switch == "miss" and b.answer(Q, "").switch == "hit"


def test_zero_shot_mode_picks_a_bucket_from_the_uncertainty(pair):
    brain = DamiBrain(_opts(pair, lam_mode="auto", u_lo=0.0, u_hi=1.0))
    brain.ask(Q, "", None, 30.0)
    u = brain.last.uncertainty
    assert u is not None and 0.0 <= u <= 1.0
    assert brain.last_lambda in BUCKETS and brain.last_lambda == min(BUCKETS, key=lambda b: (abs(b - u), -b))


def test_trained_mode_uses_the_estimator_file(pair, tmp_path):
    est = PrefEstimator(96, BUCKETS, hidden=8)
    with torch.no_grad():  # an estimator that always prefers λ = 0.75
        est.lam_emb.weight.zero_()
        est.lam_emb.weight[BUCKETS.index(0.75)] += 5.0
        for p in est.out.parameters():
            p.fill_(0.1)
    est.save(tmp_path / "est.pt")
    brain = DamiBrain(_opts(pair, lam_mode="auto", estimator="pref", estimator_path=str(tmp_path / "est.pt")))
    brain.ask(Q, "", None, 30.0)
    assert brain.last_lambda == 0.75


def test_bad_options_and_mismatched_pair_are_one_line_errors(pair, tmp_path):
    with pytest.raises(BrainError, match="needs both an instruct and a thinking model"):
        DamiBrain(DamiOptions())
    with pytest.raises(BrainError, match="lam_mode must be auto or fixed"):
        DamiBrain(_opts(pair, lam_mode="sometimes"))
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(pair.thinking, tmp_path / "odd")
    sd = load_file(tmp_path / "odd" / "model.safetensors")
    sd["model.layers.1.mlp.up_proj.weight"] = sd["model.layers.1.mlp.up_proj.weight"][:-8].contiguous()
    save_file(sd, tmp_path / "odd" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BrainError, match="not an interpolable pair") as e:
        DamiBrain(DamiOptions(instruct=str(pair.instruct), thinking=str(tmp_path / "odd")))
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_gguf_pair_serves_merged_buckets(pair, tmp_path):
    pytest.importorskip("llama_cpp")
    from engine.dami.gguf_export import export_qwen3

    gi = export_qwen3(pair.instruct, tmp_path / "i.gguf", "f16")
    gt = export_qwen3(pair.thinking, tmp_path / "t.gguf", "f16")
    brain = DamiBrain(DamiOptions(instruct=str(gi), thinking=str(gt), lam_mode="fixed", lam=0.6, max_new_tokens=6,
                                  cache_dir=str(tmp_path / "cache"), n_ctx=256, threads=1))
    text = brain.ask(Q, "", None, 30.0)
    assert isinstance(text, str) and brain.last_lambda == 0.625 and brain.last.thought
    assert 0 < brain.last_tokens <= 6 and brain.last.switch == "miss"
    assert len(list((tmp_path / "cache").glob("*lam0.6250.gguf"))) == 1  # the merged bucket, written once
    brain.ask(Q, "", None, 30.0)
    assert brain.last.switch == "hit"
    auto = DamiBrain(DamiOptions(instruct=str(gi), thinking=str(gt), lam_mode="auto", u_lo=0.0, u_hi=1.0,
                                 max_new_tokens=4, cache_dir=str(tmp_path / "cache"), n_ctx=256, threads=1,
                                 cache_size=3))
    auto.ask(Q, "", None, 30.0)
    assert auto.last.uncertainty is not None and auto.last_lambda in BUCKETS


def test_every_option_has_a_default_and_a_doc():
    import dataclasses

    docs = DamiOptions.docs()
    names = [f.name for f in dataclasses.fields(DamiOptions)]
    assert names and all(docs.get(n) for n in names), sorted(set(names) - set(docs))
    assert DamiOptions().thinking_from == 0.5 and DamiOptions().lam_mode == "auto"


def test_the_dami_brain_through_settings_delegation_and_the_event(pair, tmp_path):
    """[brain] kind = "dami" with [brain.dami] paths, built by the app's composition root: a delegate
    decision reaches it and the delegate_result carries its λ and token count."""
    import time as _time

    from app.config import load_settings
    from app.wiring import build_session
    from tests.engine.fakes import ArraySource, ScriptedBackend, solid

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[brain]\nkind = "dami"\n[brain.dami]\ninstruct = "{pair.instruct}"\nthinking = "{pair.thinking}"\n'
                   'lam_mode = "fixed"\nlam = 0.25\nmax_new_tokens = 6\n[voice]\nspeak = false\n')
    settings = load_settings(cfg, environ={})
    assert settings.brain.dami.lam == 0.25 and isinstance(settings.brain.dami.buckets, tuple)
    backend = ScriptedBackend({1: "</response> Let me think. </delegation> What is 12+34?"})
    frames = [(float(t), solid(t)) for t in range(120)]
    built = build_session(settings, backend=backend, source=ArraySource(frames), store=str(tmp_path / "s.sqlite"),
                          voice=False)  # real clock: the session is still running when the brain answers
    events: list[dict] = []
    built.bus.subscribe(events.append)
    import threading

    runner = threading.Thread(target=built.session.run, daemon=True)
    runner.start()
    deadline = _time.time() + 120
    while _time.time() < deadline and not any(e["type"] in ("delegate_result", "delegate_error") for e in events):
        _time.sleep(0.1)
    built.session.stop()
    runner.join(30)
    built.close()
    done = [e for e in events if e["type"] in ("delegate_result", "delegate_error")]
    assert done and done[0]["type"] == "delegate_result", done[0].get("message")
    assert done[0]["lam"] == 0.25 and isinstance(done[0]["answer_tokens"], int) and done[0]["answer_tokens"] >= 1
