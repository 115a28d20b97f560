"""Typed settings: dataclasses + TOML (DESIGN §8).

Precedence: documented defaults < the settings file (``--config FILE``, ``$PRESENCE_CONFIG``, or
``config.toml`` in the platform config dir) < command-line flags. A broken file or a bad value is a
:class:`ConfigError` with one readable line (the CLI exits 2), never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from engine.memory import MemoryOptions
from engine.protocol import TalkOptions

APP_NAME = "presence"


class ConfigError(ValueError):
    """A settings problem, described in one line."""


def config_dir() -> Path:
    return Path(os.environ.get("PRESENCE_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(os.environ.get("PRESENCE_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass
class BackendSettings:
    """backend: heuristic | lite | torch | llamacpp | openai ("" = the default of DESIGN §8)."""

    name: str = ""
    model: str = ""
    mmproj: str = ""
    mode: str = "auto"  # auto | native | prompt (auto: native for JoyAI models, else prompt)
    delegation: bool = True
    device: str = "auto"
    quantization: str = "none"  # none | 4bit | 8bit
    kv_cache: str = "full"  # full | tailor | quantized | sink
    kv_type: str = "auto"  # llama.cpp: auto (f16 on CPU, q8_0 on GPU) | f16 | q8_0 | q4_0
    kv_top_k: int = 0  # torch tailor cache: rows a decoded token fetches per sparse layer (0 = 512; docs/kv_cache.md)
    kv_bits: int = 0  # torch tailor/quantized cache: KIVI bits 1|2|4|16 (0 = tailor 4, quantized 2)
    n_ctx: int = 32768
    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    greedy: bool = False
    max_tokens: int = 128
    url: str = ""
    api_key_env: str = ""
    timeout_s: float = 30.0
    n_threads: int = 0  # llamacpp: CPU threads (0 = llama.cpp's default)
    n_gpu_layers: int = -1  # llamacpp: layers on the GPU (-1 = all when the build has a GPU, else none)
    text_only: bool = False  # llamacpp: ignore a projector beside the model
    images: bool = True  # openai: send frames (False for text-only servers)
    retries: int = 2  # openai: extra tries on connection errors, 408, 429 and 5xx


@dataclass
class CaptureSettings:
    source: str = ""  # "" = the bundled demo clip
    max_pixels: int = 448 * 448


@dataclass
class HeuristicSettings:
    """The heuristic backend: respond when the scene changes against the last *responded* frame."""

    change_threshold: float = 0.05  # fraction of 32×24 thumbnail cells that changed, in [0, 1]
    cooldown_s: float = 1.0
    ocr: bool = True  # name the new screen's headline when rapidocr is installed
    motion_eps: float = 0.004


@dataclass
class VoiceSettings:
    speak: bool = True
    listen: bool = False
    tts: str = "piper"
    voice: str = ""  # a Piper .onnx path or a voice name; "" = the installed default voice
    asr: str = "whisper"
    asr_model: str = ""  # "" = the installed tiny.en
    language: str = "en"
    input_device: str = ""
    output_device: str = ""
    overlap: str = "text_only"  # text_only | queue | newest_wins
    push_to_talk: bool = False
    end_of_utterance_s: float = 0.4  # with speculative transcription the transcript is ready at the cut; 0.6–0.8 for hesitant speakers
    echo: str = "gate"  # gate (mic ignored while speaking) | aec (echo cancelled) | off (headphones)
    barge_in: bool = True


@dataclass
class BrainSettings:
    kind: str = ""  # "" = none | openai | llamacpp | solve | echo
    url: str = ""
    model: str = ""
    api_key_env: str = ""  # the key itself lives in the OS keyring or the environment, never here
    timeout_s: float = 600.0
    max_concurrent: int = 2
    summarizer: str = "concat"  # concat | brain | llamacpp | backend
    takes_images: bool = False  # send the frame snapshot (only to models that accept images)


@dataclass
class UISettings:
    theme: str = "system"
    timeline_zoom: float = 1.0
    exclude_self_from_capture: bool = True


@dataclass
class Settings:
    backend: BackendSettings = field(default_factory=BackendSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    talk: TalkOptions = field(default_factory=TalkOptions)
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    heuristic: HeuristicSettings = field(default_factory=HeuristicSettings)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    brain: BrainSettings = field(default_factory=BrainSettings)
    ui: UISettings = field(default_factory=UISettings)


def _coerce(section: str, name: str, value: Any, typ: Any) -> Any:
    """Check one value against its declared type; ints are accepted where floats are expected."""
    if isinstance(typ, str):
        typ = eval(typ, {"float": float, "int": int, "str": str, "bool": bool, "None": None})  # noqa: S307
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        typ = args[0]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, str, bool) and not (isinstance(value, typ) and not (typ is int and isinstance(value, bool))):
        raise ConfigError(f"[{section}] {name} must be {typ.__name__}, got {value!r}")
    return value


def _apply(obj: Any, section: str, values: dict) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown setting [{section}] {key}")
        setattr(obj, key, _coerce(section, key, value, fields[key].type))


def load_settings(path: str | Path | None = None) -> Settings:
    """Defaults, then the settings file. An explicit path that is missing is an error; the default
    path being absent is not (first run)."""
    settings = Settings()
    explicit = path or os.environ.get("PRESENCE_CONFIG")
    p = Path(explicit) if explicit else default_config_path()
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file not found: {p}")
        return settings
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    for section, values in data.items():
        if not hasattr(settings, section) or not isinstance(values, dict):
            raise ConfigError(f"unknown config section [{section}] in {p}")
        _apply(getattr(settings, section), section, values)
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    if s.capture.max_pixels < 28 * 28:
        raise ConfigError("[capture] max_pixels must be at least 784")
    if not 0.0 <= s.talk.dedup_threshold <= 1.0:
        raise ConfigError("[talk] dedup_threshold must be between 0 and 1")
    if s.talk.cooldown_s < 0:
        raise ConfigError("[talk] cooldown_s must not be negative")
    if s.memory.chunk_ticks < 2 or s.memory.lead_ticks >= s.memory.chunk_ticks:
        raise ConfigError("[memory] chunk_ticks must be ≥ 2 and larger than lead_ticks")
    if s.backend.kv_bits not in (0, 1, 2, 4, 8, 16):
        raise ConfigError(f"[backend] kv_bits must be 0 (default), 1, 2, 4, 8 or 16, got {s.backend.kv_bits}")
    if s.backend.kv_top_k < 0:
        raise ConfigError("[backend] kv_top_k must not be negative (0 = the default)")
    if s.backend.mode not in ("auto", "native", "prompt"):
        raise ConfigError(f"[backend] mode must be auto, native or prompt, got {s.backend.mode!r}")
    if s.voice.overlap not in ("text_only", "queue", "newest_wins"):
        raise ConfigError(f"[voice] overlap must be text_only, queue or newest_wins, got {s.voice.overlap!r}")
    if s.voice.echo not in ("gate", "aec", "off"):
        raise ConfigError(f"[voice] echo must be gate, aec or off, got {s.voice.echo!r}")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if v is None:
        return '""'
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump_settings(s: Settings) -> str:
    out = []
    for f in dataclasses.fields(s):
        out.append(f"[{f.name}]")
        sec = getattr(s, f.name)
        for g in dataclasses.fields(sec):
            v = getattr(sec, g.name)
            if v is None:
                continue
            out.append(f"{g.name} = {_toml_value(v)}")
        out.append("")
    return "\n".join(out)


def save_settings(s: Settings, path: str | Path | None = None) -> Path:
    p = Path(path) if path else default_config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(dump_settings(s), encoding="utf-8")
    tmp.replace(p)  # atomic: a crash never leaves a half-written settings file
    return p
