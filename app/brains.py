"""Build the configured brain (``[brain] kind``) — shared by the session wiring and ``presence ask``."""

from __future__ import annotations

from app import registry
from app.config import BrainSettings
from engine.brain import BrainError


def build_brain(b: BrainSettings):
    """The brain object for ``b.kind`` (openai | llamacpp | solve | echo), or None when unset."""
    if not b.kind:
        return None
    try:
        cls = registry.get("presence.brain", b.kind)
    except registry.PluginUnavailable as exc:
        raise BrainError(str(exc)) from None
    if b.kind == "openai":
        return cls(url=b.url, model=b.model, api_key_env=b.api_key_env, takes_images=b.takes_images)
    if b.kind == "solve":
        return cls(url=b.url, api_key_env=b.api_key_env)
    if b.kind == "llamacpp":
        return cls(model=b.model)
    return cls()
