"""One way to declare a setting: ``setting(default, doc, ge=…, le=…)`` on a dataclass field.

Every option group in Presence (``TalkOptions``, ``MemoryOptions``, ``BackendConfig`` and its
per-backend sections, the app's capture / voice / brain / ui sections) is a plain dataclass whose
fields are declared with :func:`setting`. The field's type annotation is the type (``bool``, ``int``,
``float``, ``str``, ``list[str]``, a ``Literal[...]`` of choices, or a nested option dataclass); the
metadata holds the one-line description and the numeric range. ``app/settings.py`` reads these
declarations to load TOML, environment variables and command-line flags, to validate every value
(one line naming the key), and to generate ``assets/default_config.toml`` — so a new setting is
written exactly once, where it is used.

A field declared with plain ``field(...)`` (no ``setting``) is an internal knob, not a user setting:
the settings file cannot reach it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_META = "presence_setting"


@dataclasses.dataclass(frozen=True)
class SettingMeta:
    doc: str
    ge: float | None = None  # inclusive lower bound for numbers
    le: float | None = None  # inclusive upper bound for numbers
    secret: bool = False  # never written to a file (the value comes from the environment or keyring)


def setting(default: Any, doc: str, *, ge: float | None = None, le: float | None = None,
            secret: bool = False) -> Any:
    """A dataclass field that is a user setting. ``default`` may be a zero-argument callable for
    mutable defaults (lists, nested option groups)."""
    meta = {_META: SettingMeta(doc, ge, le, secret)}
    if callable(default) and not isinstance(default, str | bool | int | float):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_meta(f: dataclasses.Field) -> SettingMeta | None:
    """The declaration of a field, or None when the field is not a user setting."""
    return f.metadata.get(_META)
