"""The settings schema: defaults < file < environment < flags, migrations, the generated defaults file,
and one line per bad value."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import (
    DEFAULTS_FILE,
    SCHEMA_VERSION,
    ConfigError,
    Settings,
    default_toml,
    load_settings,
    save_settings,
    schema,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_a_file():
    s = load_settings()
    assert s.talk.force_silence_until_query is False
    assert s.memory.chunk_ticks == 200 and s.memory.long_max_tokens == 4000
    assert s.backend.temperature == 0.8 and s.backend.top_k == 40


def test_round_trip_through_the_platform_config_dir():
    s = Settings()
    s.talk.persona = 'Speak only about "prices"'
    s.talk.cooldown_s = 3
    s.backend.name = "heuristic"
    s.backend.kv.top_k = 128
    path = save_settings(s)
    again = load_settings()
    assert path.exists() and again.talk.persona == s.talk.persona and again.talk.cooldown_s == 3.0
    assert again.backend.name == "heuristic" and again.backend.kv.top_k == 128
    assert f"schema_version = {SCHEMA_VERSION}" in path.read_text()


def test_every_setting_is_declared_with_a_description():
    keys = schema()
    assert len(keys) > 60
    assert all(k.doc.strip() for k in keys), [k.path for k in keys if not k.doc.strip()]
    assert len({k.path for k in keys}) == len(keys)


def test_generated_defaults_file_matches_the_schema():
    """assets/default_config.toml is generated from the schema: this fails when they drift
    (regenerate with `python -m app.config > assets/default_config.toml`)."""
    assert DEFAULTS_FILE.read_text(encoding="utf-8") == default_toml()
    # and it loads back to exactly the defaults
    assert load_settings(DEFAULTS_FILE, environ={}) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[talk]\ncooldown_s = 'soon'", "[talk] cooldown_s must be float"),
        ("[talk]\nloudness = 3", "unknown setting 'talk.loudness'"),
        ("[nonsense]\nx = 1", "unknown config section [nonsense]"),
        ("[capture]\nmax_pixels = 10", "[capture] max_pixels must be at least 784"),
        ("[backend]\nmode = 'chatty'", "[backend] mode must be one of 'auto' | 'native' | 'prompt'"),
        ("[talk]\ndedup_threshold = 2.0", "[talk] dedup_threshold must be at most 1"),
        ("[talk]\ncooldown_s = nan", "[talk] cooldown_s must be a finite number"),
        ("[memory]\nchunk_ticks = 10\nlead_ticks = 20", "lead_ticks must be smaller than chunk_ticks"),
        ("[backend]\ngreedy = 1", "[backend] greedy must be bool"),
        ("[backend.kv]\nbits = 3", "bits must be 0 (default), 1, 2, 4, 8 or 16"),
        ("[backend.kv]\ntop_k = -1", "[backend.kv] top_k must be at least 0"),
        ("[brain]\nmax_concurrent = 0", "[brain] max_concurrent must be at least 1"),
        ("schema_version = 99\n", "written by a newer Presence"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(p, environ={})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_env_var_picks_the_file(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text("[talk]\ncooldown_s = 7\n")
    monkeypatch.setenv("PRESENCE_CONFIG", str(p))
    assert load_settings().talk.cooldown_s == 7.0


def test_environment_overrides_the_file_and_is_validated(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[talk]\ncooldown_s = 7\n[backend.kv]\ntop_k = 64\n")
    env = {"PRESENCE_TALK__COOLDOWN_S": "2.5", "PRESENCE_BACKEND__KV__TOP_K": "256",
           "PRESENCE_VOICE__SPEAK": "off", "PRESENCE_DATA_DIR": "/not/a/setting"}
    s = load_settings(p, environ=env)
    assert (s.talk.cooldown_s, s.backend.kv.top_k, s.voice.speak) == (2.5, 256, False)
    with pytest.raises(ConfigError, match=r"\[talk\] cooldown_s must be float.*PRESENCE_TALK__COOLDOWN_S"):
        load_settings(p, environ={"PRESENCE_TALK__COOLDOWN_S": "soon"})
    with pytest.raises(ConfigError, match="unknown setting 'talk.cooldwn_s'.*did you mean 'talk.cooldown_s'"):
        load_settings(p, environ={"PRESENCE_TALK__COOLDWN_S": "1"})


def test_flags_override_environment_and_file(tmp_path):
    """The CLI's precedence, end to end through `presence run`'s own parser."""
    from app.cli import apply_run_flags, build_parser

    p = tmp_path / "c.toml"
    p.write_text('[talk]\ncooldown_s = 7\n[backend]\nname = "lite"\n[voice]\nspeak = true\n')
    settings = load_settings(p, environ={"PRESENCE_TALK__COOLDOWN_S": "3", "PRESENCE_BACKEND__NAME": "torch"})
    assert settings.backend.name == "torch" and settings.talk.cooldown_s == 3.0  # env beat the file
    args = build_parser().parse_args(["run", "--backend", "heuristic", "--no-speak", "--set", "talk.cooldown_s=1.5",
                                      "--max-pixels", "50176"])
    apply_run_flags(settings, args)
    assert settings.backend.name == "heuristic" and settings.talk.cooldown_s == 1.5
    assert settings.voice.speak is False and settings.capture.max_pixels == 50176


def test_run_flags_come_from_the_schema():
    from app.cli import RUN_SETTING_FLAGS, RUN_SWITCH_FLAGS, build_parser

    keys = {k.path: k for k in schema()}
    assert set(RUN_SETTING_FLAGS.values()) | set(RUN_SWITCH_FLAGS.values()) <= set(keys)
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    helps = {a.option_strings[0]: a.help for a in run._actions if a.option_strings}
    for flag, path in RUN_SETTING_FLAGS.items():
        assert keys[path].doc in helps[flag]


def test_a_bad_flag_value_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "app.cli", "run", "--headless", "--max-pixels", "10"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "PRESENCE_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "max_pixels must be at least 784" in r.stderr


RELEASE_0_1_FILE = """\
# written by Presence 0.1 (no schema_version)
[backend]
name = "llamacpp"
kv_cache = "tailor"
kv_top_k = 64
kv_bits = 2
n_threads = 3
n_gpu_layers = 10
text_only = true
images = false
retries = 5
timeout_s = 12.0

[talk]
cooldown_s = 4.0

[ui]
theme = "dark"
timeline_zoom = 2.0
exclude_self_from_capture = false
"""


def test_a_settings_file_from_release_0_1_migrates(tmp_path):
    p = tmp_path / "old.toml"
    p.write_text(RELEASE_0_1_FILE)
    s = load_settings(p, environ={})
    b = s.backend
    assert (b.name, b.kv_cache, b.kv.top_k, b.kv.bits) == ("llamacpp", "tailor", 64, 2)
    assert (b.llamacpp.n_threads, b.llamacpp.n_gpu_layers, b.llamacpp.text_only) == (3, 10, True)
    assert (b.openai.images, b.openai.retries, b.timeout_s) == (False, 5, 12.0)
    assert s.talk.cooldown_s == 4.0 and s.ui.exclude_self_from_capture is False
    saved = save_settings(s, tmp_path / "new.toml")
    assert load_settings(saved, environ={}) == s
    assert "kv_top_k" not in saved.read_text() and "theme" not in saved.read_text()


def test_kv_settings_reach_the_torch_cache_options(tmp_path):
    """[backend.kv] top_k / bits become the torch cache's options; 0 leaves the cache's defaults."""
    from transformers import LlamaConfig

    import engine.kv as kv
    from app.wiring import backend_config

    p = tmp_path / "c.toml"
    p.write_text("[backend]\nkv_cache = 'tailor'\n[backend.kv]\ntop_k = 64\nbits = 2\n")
    cfg_kv = backend_config(load_settings(p, environ={})).kv
    assert (cfg_kv.top_k, cfg_kv.bits) == (64, 2)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2)
    cache = kv.make_cache("tailor", cfg, "cpu", {"top_k": 64, "bits": 2, "plan": {"quantized_layers": [0]}})
    assert cache.layers[0].bits == 2 and cache.layers[1].top_k == 64 and cache.layers[1].chunk_top_k == 256


def test_backend_config_resolves_what_other_sections_decide():
    from app.wiring import backend_config

    s = Settings()
    s.talk.silence_bias = 1.5
    s.heuristic.cooldown_s = 9.0
    cfg = backend_config(s)
    assert cfg.mode == "prompt" and cfg.silence_bias == 1.5 and cfg.heuristic.cooldown_s == 9.0
    assert cfg.delegation is False  # no brain configured: the model is not offered delegation
    s.brain.kind = "echo"
    assert backend_config(s).delegation is True
    s.backend.model = "/models/JoyAI-VL-Interaction-8B"
    assert backend_config(s).mode == "native"
