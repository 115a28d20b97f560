"""Plugin registry: entry-point groups of DESIGN §7.

Each plugin class may define ``is_available() -> (bool, install hint)``. A plugin whose optional
third-party package is missing is listed as unavailable with the reason, so the UI can say
"install presence[voice]" instead of a traceback; an import error inside Presence's own code is not
swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module, metadata

GROUPS = ("presence.backend", "presence.capture", "presence.asr", "presence.tts", "presence.brain")

# Fallback when the package metadata is missing (running from a source tree without install).
_BUILTIN: dict[str, dict[str, str]] = {
    "presence.backend": {
        "heuristic": "engine.backends.heuristic:HeuristicBackend",
        "torch": "engine.backends.torch_vlm:TorchBackend",
        "llamacpp": "engine.backends.llamacpp:LlamaCppBackend",
        "openai": "engine.backends.openai_compat:OpenAIBackend",
        "lite": "engine.backends.lite:LiteBackend",
    },
}


IN_TREE = frozenset({"engine", "plugins", "ui", "app", "training"})


class PluginUnavailable(RuntimeError):
    pass


def missing_optional_package(exc: ImportError) -> bool:
    """True when ``exc`` says a third-party package is not installed (an optional extra); False for an
    import error inside Presence's own packages, which must surface as the bug it is."""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and bool(name) and name.split(".")[0] not in IN_TREE


@dataclass
class PluginInfo:
    group: str
    name: str
    target: str
    available: bool = False
    hint: str = ""

    def load(self):
        module, _, attr = self.target.partition(":")
        try:
            obj = getattr(import_module(module), attr)
        except ImportError as exc:
            if not missing_optional_package(exc):
                raise  # a bug in our own code is a traceback, never "plugin unavailable"
            raise PluginUnavailable(f"{self.name}: {exc} (an optional extra; see README's install list)") from None
        return obj


def _targets(group: str) -> dict[str, str]:
    found = dict(_BUILTIN.get(group, {}))
    for ep in metadata.entry_points(group=group):
        found[ep.name] = ep.value
    return found


def plugins(group: str) -> list[PluginInfo]:
    """Every plugin of ``group`` with its availability (imports each one)."""
    out = []
    for name, target in sorted(_targets(group).items()):
        info = PluginInfo(group, name, target)
        try:
            cls = info.load()
            ok, hint = cls.is_available() if hasattr(cls, "is_available") else (True, "")
            info.available, info.hint = bool(ok), hint
        except PluginUnavailable as exc:
            info.available, info.hint = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never fatal
            info.available, info.hint = False, f"{name}: failed to load ({exc})"
        out.append(info)
    return out


def get(group: str, name: str):
    """Load one plugin class or raise PluginUnavailable with a readable reason."""
    targets = _targets(group)
    if name not in targets:
        raise PluginUnavailable(f"unknown {group.split('.')[-1]} {name!r} (choose from {', '.join(sorted(targets))})")
    cls = PluginInfo(group, name, targets[name]).load()
    if hasattr(cls, "is_available"):
        ok, hint = cls.is_available()
        if not ok:
            raise PluginUnavailable(f"{group.split('.')[-1]} {name!r} is not available: {hint}")
    return cls
