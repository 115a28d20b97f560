"""The settings schema: one table, four sources, one line per problem.

Every setting is declared once, with :func:`engine.options.setting`, on the option dataclass of the
component that uses it (``[backend]`` is ``engine.backends.base.BackendConfig`` with its per-backend
sections ``[backend.llamacpp]``, ``[backend.openai]``, ``[backend.kv]``; ``[talk]`` is
``engine.protocol.TalkOptions``; ``[memory]`` is ``engine.memory.MemoryOptions``; ``[heuristic]`` is
``engine.backends.base.HeuristicOptions``; ``[storage]`` is ``engine.sinks.StorageOptions``; capture,
voice, brain and ui are declared below). The
declaration gives the type (``Literal`` for choices), the default, the range and a one-line
description. From that one table this module:

- loads, in order of precedence: documented defaults < the settings file (``--config FILE``,
  ``$PRESENCE_CONFIG``, or ``config.toml`` in the platform config dir) < environment variables
  ``PRESENCE_<SECTION>__<KEY>`` (``PRESENCE_TALK__COOLDOWN_S=5``, ``PRESENCE_BACKEND__KV__TOP_K=256``)
  < command-line overrides (``presence run`` flags and ``--set section.key=value``);
- migrates files written by earlier releases (``schema_version``; files without it are version 1);
- rejects unknown keys and bad values with one line naming the key (:class:`ConfigError`, exit 2);
- writes the settings file and generates ``assets/default_config.toml`` (``python -m app.config``).

Secrets (API keys) never live here: a setting names the environment variable or keyring entry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import platformdirs

from engine.backends.base import BackendConfig, HeuristicOptions
from engine.dami.options import DamiOptions
from engine.memory import MemoryOptions
from engine.options import setting, setting_meta
from engine.protocol import TalkOptions
from engine.sinks import StorageOptions

APP_NAME = "presence"
SCHEMA_VERSION = 2
ENV_PREFIX = "PRESENCE_"
ENV_NESTING = "__"
DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "assets" / "default_config.toml"


class ConfigError(ValueError):
    """A settings problem, described in one line."""


def config_dir() -> Path:
    return Path(os.environ.get("PRESENCE_CONFIG_DIR") or platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    return Path(os.environ.get("PRESENCE_DATA_DIR") or platformdirs.user_data_dir(APP_NAME))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


# --- the app's own sections ------------------------------------------------------------------------
@dataclass
class CaptureSettings:
    """``[capture]``: what is watched and at what size the model sees it."""

    source: str = setting("", "screen[:N] | window:TITLE | webcam[:N] | a video file | a URL (\"\" = the demo clip)")
    max_pixels: int = setting(448 * 448, "frames are resized to at most this many pixels", ge=28 * 28)
    exclude_windows: list[str] = setting(
        list, "windows masked flat grey out of screen captures before anything sees them: each entry matches a "
              "window whose title or application (X11 WM_CLASS) contains it, any case (Linux/X11, needs xdotool)")


@dataclass
class VoiceSettings:
    """``[voice]``: speech out (Piper) and in (Whisper); both can be switched during a session."""

    speak: bool = setting(True, "speak responses aloud")
    listen: bool = setting(False, "listen to the microphone; what you say becomes the standing instruction")
    tts: Literal["piper", "silent"] = setting("piper", "speech engine (silent = no audio, for tests)")
    voice: str = setting("", "a Piper .onnx path or voice name (\"\" = the installed default voice)")
    asr: Literal["whisper"] = setting("whisper", "speech recogniser")
    asr_model: str = setting("", "Whisper model (\"\" = the installed tiny.en)")
    language: str = setting("en", "spoken language")
    input_device: str = setting("", "microphone (\"\" = the system default)")
    output_device: str = setting("", "speaker (\"\" = the system default)")
    overlap: Literal["text_only", "queue", "newest_wins"] = setting(
        "text_only", "a response while one is still being spoken: show it only | queue it | cut the old one")
    push_to_talk: bool = setting(False, "listen only while the push-to-talk key (F9) or button is held")
    end_of_utterance_s: float = setting(
        0.4, "seconds of silence that end a question (0.6-0.8 for hesitant speakers)", ge=0.1, le=5.0)
    echo: Literal["gate", "aec", "off"] = setting(
        "gate", "gate: mic ignored while speaking | aec: echo cancelled | off: headphones")
    barge_in: bool = setting(True, "speaking over Presence stops its speech")


@dataclass
class BrainSettings:
    """``[brain]``: the background brain that answers delegated questions, and the summarizer."""

    kind: Literal["", "openai", "llamacpp", "solve", "echo", "dami"] = setting(
        "", "\"\" = no brain (the model is not offered delegation) | openai | llamacpp | solve | echo | dami")
    url: str = setting("", "brain endpoint URL (openai, solve)")
    model: str = setting("", "brain model name or GGUF path")
    api_key_env: str = setting("", "environment variable holding the brain's API key (never stored here)")
    timeout_s: float = setting(600.0, "seconds a delegated question may take", ge=1.0)
    max_concurrent: int = setting(2, "delegated questions answered at once", ge=1, le=16)
    summarizer: Literal["concat", "brain", "llamacpp"] = setting(
        "concat", "memory summaries: concat (no model) | brain | llamacpp (local SmolLM2)")
    takes_images: bool = setting(False, "send the frame snapshot (only to models that accept images)")
    dami: DamiOptions = setting(DamiOptions, "kind = dami: an Instruct/Thinking pair, reasoning depth per question "
                                             "(docs/dami.md); instruct/thinking take paths or pair preset keys")


@dataclass
class UISettings:
    """``[ui]``: the desktop app."""

    exclude_self_from_capture: bool = setting(True, "keep Presence's own window out of screen captures")
    first_run_done: bool = setting(False, "the first-run wizard finished or was skipped (it opens on launch until then)")
    pause_capture_hotkey: str = setting("ctrl+alt+p", "system-wide key that pauses and resumes capture (X11; "
                                         "elsewhere it works while the window has the focus); empty = none")


@dataclass
class Settings:
    """The whole settings table; each field is one ``[section]`` of the TOML file."""

    backend: BackendConfig = dataclasses.field(default_factory=BackendConfig)
    capture: CaptureSettings = dataclasses.field(default_factory=CaptureSettings)
    talk: TalkOptions = dataclasses.field(default_factory=TalkOptions)
    memory: MemoryOptions = dataclasses.field(default_factory=MemoryOptions)
    heuristic: HeuristicOptions = dataclasses.field(default_factory=HeuristicOptions)
    voice: VoiceSettings = dataclasses.field(default_factory=VoiceSettings)
    brain: BrainSettings = dataclasses.field(default_factory=BrainSettings)
    storage: StorageOptions = dataclasses.field(default_factory=StorageOptions)
    ui: UISettings = dataclasses.field(default_factory=UISettings)


# --- the schema, read from the declarations --------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """One setting: its dotted path (``backend.kv.top_k``), type, default and declaration."""

    path: str
    type: Any
    default: Any
    doc: str
    ge: float | None
    le: float | None

    @property
    def section(self) -> str:
        return self.path.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[1]

    @property
    def choices(self) -> tuple | None:
        return typing.get_args(self.type) if typing.get_origin(self.type) is Literal else None


def _is_group(typ: Any) -> bool:
    return isinstance(typ, type) and dataclasses.is_dataclass(typ)


def _groups(cls: type, prefix: str) -> typing.Iterator[tuple[str, type, dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f"{prefix}{f.name}", hints[f.name], f, setting_meta(f)


def schema(cls: type = Settings, prefix: str = "") -> list[Key]:
    """Every user setting, in declaration order (nested option groups flattened to dotted paths)."""
    out: list[Key] = []
    instance = cls()
    for path, typ, f, meta in _groups(cls, prefix):
        top_level = cls is Settings
        if _is_group(typ) and (top_level or meta is not None):
            out += schema(typ, path + ".")
        elif meta is not None and not top_level:
            out.append(Key(path, typ, getattr(instance, f.name), meta.doc, meta.ge, meta.le))
    return out


@functools.cache
def schema_keys() -> dict[str, Key]:
    """Dotted path → Key (the declarations never change at run time: read once)."""
    return {k.path: k for k in schema()}


@functools.cache
def sections() -> list[str]:
    """Section paths in order (``backend``, ``backend.llamacpp``, …, ``ui``)."""
    seen: dict[str, None] = {}
    for k in schema_keys().values():
        seen.setdefault(k.section, None)
    return list(seen)


# --- values -----------------------------------------------------------------------------------------
def _type_name(typ: Any) -> str:
    if typing.get_origin(typ) is Literal:
        return " | ".join(repr(c) for c in typing.get_args(typ))
    if typing.get_origin(typ) in (list, tuple):
        return "a list"
    return getattr(typ, "__name__", str(typ))


def coerce(key: Key, value: Any, *, from_text: bool = False) -> Any:
    """``value`` checked against ``key``'s declaration; text (environment, flags) is parsed first."""
    typ = key.type
    where = f"[{key.section}] {key.name}"
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    choices = key.choices
    base = type(choices[0]) if choices else typing.get_origin(typ) or typ
    if from_text:
        value = _parse_text(where, base, value)
    if choices:
        if value not in choices:
            raise ConfigError(f"{where} must be one of {_type_name(typ)}, got {value!r}")
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if base in (list, tuple):
        elem = (typing.get_args(typ) or (str,))[0]
        items = value if isinstance(value, list | tuple) else None
        if items is None or not all(_is(v, elem) for v in items):
            raise ConfigError(f"{where} must be a list of {getattr(elem, '__name__', elem)}, got {value!r}")
        items = [float(v) if elem is float else v for v in items]
        return tuple(items) if base is tuple else list(items)
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {_type_name(base)}, got {value!r}")
    if base in (int, float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        if key.ge is not None and value < key.ge:
            raise ConfigError(f"{where} must be at least {key.ge:g}, got {value!r}")
        if key.le is not None and value > key.le:
            raise ConfigError(f"{where} must be at most {key.le:g}, got {value!r}")
    return value


def _is(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, typ) and not (typ is int and isinstance(value, bool))


def _parse_text(where: str, base: type, text: str) -> Any:
    text = str(text).strip()
    try:
        if base is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base is int:
            return int(text)
        if base is float:
            return float(text)
        if base in (list, tuple):  # "0, 0.5, 1": the schema checks the items' type next
            parts = [p.strip() for p in text.split(",") if p.strip()]
            out = []
            for part in parts:
                try:
                    out.append(float(part) if any(c in part for c in ".e") or part.isdigit() else part)
                except ValueError:
                    out.append(part)
            return out
    except ValueError:
        raise ConfigError(f"{where} must be {_type_name(base)}, got {text!r}") from None
    return text


def _target(settings: Settings, section: str) -> Any:
    obj: Any = settings
    for part in section.split("."):
        obj = getattr(obj, part)
    return obj


def set_value(settings: Settings, path: str, value: Any, *, from_text: bool = False) -> None:
    """Set one setting by dotted path (``talk.cooldown_s``), validated."""
    key = schema_keys().get(path)
    if key is None:
        raise ConfigError(f"unknown setting {path!r}" + _suggest(path))
    setattr(_target(settings, key.section), key.name, coerce(key, value, from_text=from_text))


def get_value(settings: Settings, path: str) -> Any:
    key = schema_keys()[path]
    return getattr(_target(settings, key.section), key.name)


def _suggest(path: str) -> str:
    import difflib

    close = difflib.get_close_matches(path, list(schema_keys()), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- migrations -------------------------------------------------------------------------------------
def _migrate_1_to_2(data: dict) -> dict:
    """Release 0.1 wrote flat backend keys for per-backend options and two ``[ui]`` keys that did
    nothing; they move to their typed sections or are dropped."""
    backend = data.get("backend")
    if isinstance(backend, dict):
        moves = {"n_threads": ("llamacpp", "n_threads"), "n_gpu_layers": ("llamacpp", "n_gpu_layers"),
                 "text_only": ("llamacpp", "text_only"), "images": ("openai", "images"),
                 "retries": ("openai", "retries"), "kv_top_k": ("kv", "top_k"), "kv_bits": ("kv", "bits")}
        for old, (group, new) in moves.items():
            if old in backend:
                backend.setdefault(group, {})[new] = backend.pop(old)
    ui = data.get("ui")
    if isinstance(ui, dict):
        for dead in ("theme", "timeline_zoom"):
            ui.pop(dead, None)
    brain = data.get("brain")
    if isinstance(brain, dict) and brain.get("summarizer") == "":
        brain["summarizer"] = "concat"
    return data


MIGRATIONS = {1: _migrate_1_to_2}  # version → function producing version + 1


def migrate(data: dict, source: str = "settings") -> dict:
    version = data.pop("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise ConfigError(f"{source}: schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ConfigError(f"{source} was written by a newer Presence (schema_version {version}; "
                          f"this one reads up to {SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return data


# --- loading ----------------------------------------------------------------------------------------
def _apply_table(settings: Settings, data: dict, prefix: str, source: str) -> None:
    for name, value in data.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            if path not in sections():
                raise ConfigError(f"unknown config section [{path}] in {source}" + _suggest(path))
            _apply_table(settings, value, path + ".", source)
        elif not prefix:
            raise ConfigError(f"{source}: {name!r} must be inside a [section]")
        else:
            try:
                set_value(settings, path, value)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (in {source})") from None


def apply_env(settings: Settings, environ: typing.Mapping[str, str] | None = None) -> None:
    """``PRESENCE_<SECTION>__<KEY>=value`` overrides (``__`` separates nesting levels)."""
    environ = os.environ if environ is None else environ
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or ENV_NESTING not in name:
            continue
        path = name[len(ENV_PREFIX):].lower().replace(ENV_NESTING, ".")
        try:
            set_value(settings, path, value, from_text=True)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from ${name})") from None


def apply_overrides(settings: Settings, overrides: typing.Iterable[str]) -> None:
    """``section.key=value`` strings (``presence run --set talk.cooldown_s=5``)."""
    for item in overrides:
        path, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        set_value(settings, path.strip(), value, from_text=True)


def read_file(p: Path) -> dict:
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None


def load_settings(path: str | Path | None = None, *, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Defaults < the settings file < environment. An explicit path that is missing is an error; the
    default path being absent is not (first run). Flags are applied by the caller (``apply_flags``)."""
    settings = Settings()
    explicit = path or os.environ.get("PRESENCE_CONFIG")
    p = Path(explicit) if explicit else default_config_path()
    if p.exists():
        data = migrate(read_file(p), source=str(p))
        _apply_table(settings, data, "", str(p))
    elif explicit:
        raise ConfigError(f"config file not found: {p}")
    apply_env(settings, environ)
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    """Rules that span two settings (single values are checked by their declarations)."""
    if s.memory.lead_ticks >= s.memory.chunk_ticks:
        raise ConfigError("[memory] lead_ticks must be smaller than chunk_ticks")
    if s.backend.kv.bits not in (0, 1, 2, 4, 8, 16):
        raise ConfigError(f"[backend.kv] bits must be 0 (default), 1, 2, 4, 8 or 16, got {s.backend.kv.bits}")


# --- writing ----------------------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump_settings(s: Settings, *, with_docs: bool = False) -> str:
    out = [f"schema_version = {SCHEMA_VERSION}", ""]
    current = None
    for key in schema_keys().values():
        if key.section != current:
            if current is not None:
                out.append("")
            current = key.section
            out.append(f"[{current}]")
        line = f"{key.name} = {_toml_value(get_value(s, key.path))}"
        if with_docs:
            line += f"  # {key.doc}"
        out.append(line)
    return "\n".join(out) + "\n"


def default_toml() -> str:
    """The text of ``assets/default_config.toml``: every setting, its default and its description."""
    header = ("# Presence settings with their documented defaults, generated from the settings schema\n"
              "# (app/config.py; regenerate with `python -m app.config > assets/default_config.toml`).\n"
              "# Copy to your config dir as config.toml: Linux ~/.config/presence/config.toml,\n"
              "# Windows %LOCALAPPDATA%\\presence\\presence\\config.toml,\n"
              "# macOS ~/Library/Application Support/presence/config.toml.\n"
              "# Environment overrides: PRESENCE_<SECTION>__<KEY>, e.g. PRESENCE_TALK__COOLDOWN_S=5.\n\n")
    return header + dump_settings(Settings(), with_docs=True)


def save_settings(s: Settings, path: str | Path | None = None) -> Path:
    p = Path(path) if path else default_config_path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # private: it may name servers and keys' vars
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(dump_settings(s))
    tmp.replace(p)  # atomic: a crash never leaves a half-written settings file
    return p


if __name__ == "__main__":
    sys.stdout.write(default_toml())
