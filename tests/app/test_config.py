import pytest

from app.config import ConfigError, Settings, load_settings, save_settings


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
    path = save_settings(s)
    again = load_settings()
    assert path.exists() and again.talk.persona == s.talk.persona and again.talk.cooldown_s == 3.0
    assert again.backend.name == "heuristic"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[talk]\ncooldown_s = 'soon'", "[talk] cooldown_s must be float"),
        ("[talk]\nloudness = 3", "unknown setting [talk] loudness"),
        ("[nonsense]\nx = 1", "unknown config section [nonsense]"),
        ("[capture]\nmax_pixels = 10", "max_pixels must be at least"),
        ("[backend]\nmode = 'chatty'", "mode must be auto, native or prompt"),
        ("[talk]\ndedup_threshold = 2.0", "dedup_threshold must be between"),
        ("[memory]\nchunk_ticks = 10\nlead_ticks = 20", "larger than lead_ticks"),
        ("[backend]\ngreedy = 1", "[backend] greedy must be bool"),
        ("[backend]\nkv_bits = 3", "kv_bits must be 0 (default), 1, 2, 4, 8 or 16"),
        ("[backend]\nkv_top_k = -1", "kv_top_k must not be negative"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_env_var_picks_the_file(tmp_path, monkeypatch):
    p = tmp_path / "c.toml"
    p.write_text("[talk]\ncooldown_s = 7\n")
    monkeypatch.setenv("PRESENCE_CONFIG", str(p))
    assert load_settings().talk.cooldown_s == 7.0


def test_kv_settings_reach_the_torch_cache_options(tmp_path):
    """[backend] kv_top_k / kv_bits become the torch backend's cache options; 0 leaves the cache's defaults."""
    from transformers import LlamaConfig

    import engine.kv as kv
    from app.wiring import backend_config

    p = tmp_path / "c.toml"
    p.write_text("[backend]\nkv_cache = 'tailor'\nkv_top_k = 64\nkv_bits = 2\n")
    opts = backend_config(load_settings(p)).options["kv"]
    assert opts == {"top_k": 64, "bits": 2}
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2)
    cache = kv.make_cache("tailor", cfg, "cpu", {**opts, "plan": {"quantized_layers": [0]}})
    assert cache.layers[0].bits == 2 and cache.layers[1].top_k == 64 and cache.layers[1].chunk_top_k == 256
    assert backend_config(Settings()).options["kv"] == {}
