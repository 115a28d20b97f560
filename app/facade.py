"""The one door from the desktop UI into the rest of the app.

``ui`` sits above ``plugins`` and ``engine`` and below ``app`` (the import-linter layers contract in
pyproject.toml); the only ``app`` module it may import is this one. A :class:`Controller` is made by
``app.gui`` and handed to the main window: it owns the settings and the running session (start,
pause, stop, instructions, Speak / Listen / push-to-talk, status), saves settings, and opens and
exports recorded sessions. The few app types and helpers the dialogs need are re-exported here so
the UI names them in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.config import ConfigError, Settings, save_settings, schema_keys, validate
from app.export import export_session
from app.models import (  # the first-run wizard
    PRESETS,
    Cancelled,
    Hardware,
    ModelError,
    ModelStore,
    Recommendation,
    build_info,
    detect_hardware,
    estimate_vram,
    find_preset,
    gpu_memory_bytes,
    human,
    recommend,
)
from app.replay import RecordedSession, is_store, open_recorded
from app.retention import (
    Forgotten,
    SessionInfo,
    apply_retention,
    delete_sessions,
    list_sessions,
    session_stores,
    sessions_dir,
)
from app.runner import EngineRunner, RunOptions
from app.streams_runner import StreamsRunner  # File → Watch several sources…
from app.wiring import DEMO_CLIP, default_backend_name

__all__ = [
    "PRESETS", "Cancelled", "ConfigError", "Controller", "DEMO_CLIP", "ModelError", "ModelStore", "RecordedSession",
    "RunOptions", "Settings", "estimate_vram", "find_preset", "gpu_memory_bytes", "human", "save_settings",
    "schema_keys", "validate", "StreamsRunner",
    "Hardware", "Recommendation", "build_info", "detect_hardware", "recommend", "Forgotten", "SessionInfo",
]


def _marks(store, session: str) -> dict[int, str]:
    """The corrected seconds of ``session`` by kind, as the timeline shows them."""
    return {sec: c.kind for sec, c in store.active(session).items()}


class Controller:
    """Settings plus at most one running session, driven from the GUI thread (never blocks)."""

    def __init__(self, settings: Settings | None = None, config_path: str | None = None, build=None):
        self.settings = settings or Settings()
        self.config_path = config_path
        self._build = build  # test seam: replaces app.wiring.build_session
        self.runner: EngineRunner | None = None
        self.viewing: tuple[Path | None, str] | None = None  # a recorded session shown (its store, if any)

    # --- the session --------------------------------------------------------------------------------
    def connect(self, sink: Callable[[dict], None], on_delta: Callable[[int, str], None],
                on_frame: Callable[[object], None] | None = None) -> None:
        """Where the running session's events, streamed text and previews go (set once by the window)."""
        self.runner = EngineRunner(sink, on_delta, on_frame, build=self._build)

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def start(self, opts: RunOptions | None = None) -> None:
        self.viewing = None
        self.runner.start(self.settings, opts or RunOptions())

    def pause(self, paused: bool) -> None:
        self.runner.pause(paused)

    def stop(self) -> None:
        self.runner.stop()

    def join(self, timeout: float | None = None) -> bool:
        return self.runner.join(timeout)

    def submit_query(self, text: str) -> bool:
        """Send an instruction; True when a session takes it now, False when it waits for the next start."""
        if self.running:
            self.runner.submit_query(text)
            return True
        return False

    # --- voice --------------------------------------------------------------------------------------
    def set_speak(self, on: bool) -> bool:
        """Switch speech for this and later sessions; the running session follows at once."""
        self.settings.voice.speak = on
        voice = self.runner.voice if self.runner else None
        return voice.set_speak(on) if voice is not None else on

    def set_listen(self, on: bool) -> bool:
        self.settings.voice.listen = on
        voice = self.runner.voice if self.runner else None
        return voice.set_listen(on) if voice is not None else on

    def push_to_talk(self, pressed: bool) -> None:
        voice = self.runner.voice if self.runner else None
        if voice is not None:
            voice.push_to_talk(pressed)

    def voice_status(self) -> tuple[bool, float | None]:
        """(speaking now, microphone level or None when not listening)."""
        voice = self.runner.voice if self.runner else None
        if voice is None:
            return False, None
        return voice.speaking, voice.mic_level()

    # --- settings, models ---------------------------------------------------------------------------
    def save_settings(self) -> Path:
        validate(self.settings)
        return save_settings(self.settings, self.config_path)

    def backend_name(self) -> str:
        return default_backend_name(self.settings)

    def use_model(self, backend: str, model: str) -> Path:
        self.settings.backend.name = backend
        self.settings.backend.model = model
        return self.save_settings()

    # --- recorded sessions --------------------------------------------------------------------------
    def open_recorded(self, path: str | Path, session: str | None = None) -> RecordedSession:
        recorded = open_recorded(path, session)
        # a JSONL log is read-only and cannot hold corrections: (None, id) says so
        self.viewing = (Path(path) if is_store(Path(path)) else None, recorded.session)
        return recorded

    def recorded_sessions(self) -> tuple[list[SessionInfo], list[str]]:
        """The sessions under the data dir (oldest first) and a warning line per unreadable store."""
        return list_sessions(session_stores())

    def delete_sessions(self, ids: list[str]) -> Forgotten:
        """Delete recorded sessions (never the running one). Raises OSError/sqlite3.Error on failure."""
        live = self.runner.last_store if self.runner is not None and self.running else None
        if live is not None and any(live[1].startswith(i) for i in ids):
            raise OSError("the running session cannot be deleted; stop it first")
        return delete_sessions(session_stores(), ids)

    def apply_retention(self) -> Forgotten:
        """Apply ``[storage] keep_days`` / ``max_gb`` now (sessions apply it when they start)."""
        st = self.settings.storage
        return apply_retention(sessions_dir(), st.keep_days, st.max_gb)

    # --- lessons from the timeline (docs/training.md) -------------------------------------------------
    def correction_target(self) -> tuple[Path, str] | None:
        """(store, session) corrections go to: the session being viewed, else the latest live one."""
        if self.viewing is not None:
            return self.viewing if self.viewing[0] is not None else None
        return self.runner.last_store if self.runner is not None else None

    def corrections(self) -> dict[int, str]:
        """The corrected seconds of the session corrections go to (empty when there is none)."""
        from training.corrections import CorrectionStore

        target = self.correction_target()
        if target is None or not is_store(target[0]):
            return {}
        store = CorrectionStore(target[0])
        try:
            return _marks(store, target[1])
        finally:
            store.close()

    def correct(self, t: int, kind: str, text: str = "") -> dict[int, str]:
        """Record a correction for second ``t`` (speak | silent | reply, or undo the latest); returns the
        corrected seconds by kind. Raises CorrectionError with one line when it cannot."""
        from training.corrections import CorrectionError, CorrectionStore

        target = self.correction_target()
        if target is None:
            raise CorrectionError("corrections need a recorded session store: run a session or open a .sqlite store")
        store = CorrectionStore(target[0])
        try:
            if kind == "undo":
                store.undo(target[1])
            else:
                store.add(target[1], t, kind, text)
            return _marks(store, target[1])
        finally:
            store.close()

    @staticmethod
    def export(events: list[dict], directory: str | Path, stem: str) -> dict:
        return export_session(events, directory, stem=stem)
