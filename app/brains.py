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
    if b.kind == "dami":
        try:
            return cls(resolve_dami_pair(b.dami))
        except ValueError as exc:  # a bad pair or option: one line (PairError is a ValueError)
            raise BrainError(str(exc).splitlines()[0]) from None
    return cls()


def resolve_dami_pair(options):
    """``[brain.dami] instruct/thinking`` may name a pair preset (``qwen3-4b-2507-dami``) instead of two
    paths: the preset's models come from the local Hugging Face cache (pulled with the model manager)."""
    import dataclasses

    from app.models import ModelStore
    from engine.dami.presets import PAIR_PRESETS

    presets = {p.key: p for p in PAIR_PRESETS}
    paths = {}
    for role in ("instruct", "thinking"):
        value = getattr(options, role)
        preset = presets.get(value)
        if preset is None:
            continue
        repo = preset.instruct_repo if role == "instruct" else preset.thinking_repo
        local = ModelStore().local_path(repo)
        if local is None:
            raise BrainError(f"dami brain: {repo} is not downloaded — pull it in Models… (presence models pull {repo})")
        if preset.form == "gguf":
            ggufs = sorted(local.rglob("*Q8_0.gguf"))
            if not ggufs:
                raise BrainError(f"dami brain: no Q8_0 GGUF in {local}")
            local = ggufs[0]
        paths[role] = str(local)
    return dataclasses.replace(options, **paths)
