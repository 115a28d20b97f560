"""Lessons from the user's own timeline: corrections and kept frames, beside the decisions.

Both live in the session's own SQLite store (``engine.log.SqliteStore``'s file), in tables of their
own, so deleting the session file deletes them too::

    corrections(id, session, t, kind, text, wall, undone)    kind: speak | silent | reply
    training_frames(session, t, png)                          model-sized frames, PNG (lossless)
    training_settings(session, keep_frames)                   "keep frames for training", off by default

What the timeline UI calls (one second ``t`` of session ``sid``)::

    store = CorrectionStore(path)                 # the session's .sqlite file
    store.add(sid, t, "speak", "optional reply")  # "should have spoken here"
    store.add(sid, t, "silent")                   # "should have stayed silent"
    store.add(sid, t, "reply", "better reply")    # "better reply: …"
    store.undo(sid)  /  store.undo(sid, cid)      # the last one, or a given one
    store.active(sid)                             # what to draw on the timeline (latest per second)
    store.set_keep_frames(sid, True)              # the per-session setting
    FrameKeepingBackend(backend, store, sid)      # wraps the backend: stores each tick's frame while on

``export_sessions`` writes the per-second dataset (training/dataset.py): corrections override the
model's decisions; the seconds the user left alone keep the model's decision at a lower weight.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.backends.base import Backend
from engine.backends.wrapped import WrappedBackend
from engine.context import Turn
from engine.events import EventType
from engine.protocol import normalize

KINDS = ("speak", "silent", "reply")
DEFAULT_SPEAK_TEXT = "Look at this."  # "should have spoken here" without a reply text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections(
    id INTEGER PRIMARY KEY, session TEXT NOT NULL, t INTEGER NOT NULL, kind TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '', wall TEXT, undone INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS corrections_session_t ON corrections(session, t);
CREATE TABLE IF NOT EXISTS training_frames(
    session TEXT NOT NULL, t INTEGER NOT NULL, png BLOB NOT NULL, PRIMARY KEY(session, t));
CREATE TABLE IF NOT EXISTS training_settings(session TEXT PRIMARY KEY, keep_frames INTEGER NOT NULL DEFAULT 0);
"""


class CorrectionError(ValueError):
    """A bad correction or export request: one readable line."""


@dataclass(frozen=True)
class Correction:
    id: int
    session: str
    t: int
    kind: str
    text: str = ""

    def decision(self, fallback_text: str = "") -> str:
        """The decision text this correction stands for."""
        if self.kind == "silent":
            return "</silence>"
        text = " ".join(self.text.split()) or fallback_text or DEFAULT_SPEAK_TEXT
        return normalize(f"</response> {text}").canonical()


class CorrectionStore:
    """Corrections and kept frames in a session store file (safe to open beside the session's writer)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    # --- corrections --------------------------------------------------------------------------
    def add(self, session: str, t: int, kind: str, text: str = "") -> int:
        if kind not in KINDS:
            raise CorrectionError(f"unknown correction {kind!r} (speak | silent | reply)")
        if int(t) < 0:
            raise CorrectionError(f"second must be >= 0, got {t}")
        if kind == "reply" and not text.strip():
            raise CorrectionError("'better reply' needs the reply text")
        wall = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._lock:
            cur = self._db.execute("INSERT INTO corrections(session, t, kind, text, wall) VALUES (?,?,?,?,?)",
                                   (session, int(t), kind, text.strip(), wall))
            return int(cur.lastrowid)

    def undo(self, session: str, cid: int | None = None) -> Correction | None:
        """Undo correction ``cid``, or the session's latest active one; returns it (None: nothing to undo)."""
        with self._lock:
            if cid is None:
                row = self._db.execute("SELECT id, session, t, kind, text FROM corrections WHERE session=? AND "
                                       "undone=0 ORDER BY id DESC LIMIT 1", (session,)).fetchone()
            else:
                row = self._db.execute("SELECT id, session, t, kind, text FROM corrections WHERE session=? AND "
                                       "id=? AND undone=0", (session, int(cid))).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE corrections SET undone=1 WHERE id=?", (row[0],))
        return Correction(*row)

    def active(self, session: str) -> dict[int, Correction]:
        """Second → the correction in force there (the latest not undone)."""
        with self._lock:
            rows = self._db.execute("SELECT id, session, t, kind, text FROM corrections WHERE session=? AND undone=0 "
                                    "ORDER BY id", (session,)).fetchall()
        return {r[2]: Correction(*r) for r in rows}

    # --- kept frames --------------------------------------------------------------------------
    def set_keep_frames(self, session: str, on: bool) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO training_settings(session, keep_frames) VALUES (?,?)",
                             (session, int(bool(on))))

    def keep_frames(self, session: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT keep_frames FROM training_settings WHERE session=?", (session,)).fetchone()
        return bool(row and row[0])

    def add_frame(self, session: str, t: int, pixels: np.ndarray) -> None:
        """Store one second's model-sized RGB frame [H, W, 3] (only while the setting is on)."""
        ok, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        if not ok:
            raise CorrectionError(f"cannot encode the frame at {t}s")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO training_frames(session, t, png) VALUES (?,?,?)",
                             (session, int(t), png.tobytes()))

    def frames(self, session: str) -> Iterator[tuple[int, np.ndarray]]:
        with self._lock:
            rows = self._db.execute("SELECT t, png FROM training_frames WHERE session=? ORDER BY t",
                                    (session,)).fetchall()
        for t, png in rows:
            bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            yield int(t), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def delete_session(self, session: str) -> None:
        """Forget a session's corrections, frames and setting."""
        with self._lock:
            for table in ("corrections", "training_frames", "training_settings"):
                self._db.execute(f"DELETE FROM {table} WHERE session=?", (session,))  # noqa: S608 - fixed names

    # --- what the session logged --------------------------------------------------------------
    def timeline(self, session: str) -> tuple[dict[int, str], dict[int, str]]:
        """(second → committed decision text, second → query asked) from the session's events."""
        decisions: dict[int, str] = {}
        queries: dict[int, str] = {}
        with self._lock:
            try:
                rows = self._db.execute("SELECT type, json FROM events WHERE session=? AND type IN "
                                        "('decision', 'query') ORDER BY id", (session,)).fetchall()
            except sqlite3.OperationalError:
                rows = []
        for type_, raw in rows:
            ev = json.loads(raw)
            t = int(ev["t"])
            if type_ == EventType.QUERY:
                queries.setdefault(t, ev.get("text", ""))
            elif ev.get("action") == "silence":
                decisions[t] = "</silence>"
            elif ev.get("action") == "delegate":
                decisions[t] = f"</response> {ev.get('text', '')} </delegation> {ev.get('delegate_query', '')}"
            else:
                decisions[t] = f"</response> {ev.get('text', '')}"
        return decisions, queries

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class FrameKeepingBackend(WrappedBackend):
    """Wraps a backend and stores every tick's model-sized frame while "keep frames" is on."""

    def __init__(self, inner: Backend, store: CorrectionStore, session: str):
        super().__init__(inner)
        self.store, self.session = store, session

    def observe(self, turn: Turn) -> None:
        if turn.pixels is not None and self.store.keep_frames(self.session):
            self.store.add_frame(self.session, turn.t, turn.pixels)
        self.inner.observe(turn)


def export_session(store: CorrectionStore, session: str, out_dir: str | Path, standing_weight: float = 0.5,
                   use_corrections: bool = True) -> Path:
    """Write ``<session>.avi`` (the kept frames, one per second, lossless) and ``<session>.json``
    (per-second annotation) to ``out_dir``. Corrected seconds weigh 1.0, the others ``standing_weight``."""
    from training.dataset import Annotation, Item, write_annotation

    frames = dict(store.frames(session))
    if not frames:
        raise CorrectionError(f"session {session} has no kept frames (turn on 'keep frames for training' "
                              "before recording)")
    decisions, queries = store.timeline(session)
    duration = max(max(frames), max(decisions, default=0)) + 1
    corrections = store.active(session) if use_corrections else {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = out / f"{session}.avi"
    _write_video(video, frames, duration)
    responses, weights = [], {}
    for t in range(duration):
        text = decisions.get(t, "</silence>")
        if t in corrections:
            text = corrections[t].decision()
        else:
            weights[t] = standing_weight
        if text.strip() != "</silence>":
            d = normalize(text)
            content = d.text if d.action == "response" else f"{d.text} </delegation> {d.delegate_query}"
            responses.append(Item(t, content, d.action == "delegate"))
    qs = [Item(t, q) for t, q in sorted(queries.items()) if q.strip() and t < duration]
    ann = Annotation(out / f"{session}.json", video, duration, qs, responses, weights,
                     {"video_name": session, "source": "presence-corrections", "task_type": "corrections"})
    return write_annotation(ann)


def _write_video(path: Path, frames: dict[int, np.ndarray], duration: int, fps: int = 2) -> None:
    """One frame per second held for ``fps`` frames (a second without a kept frame repeats the last).
    FFV1 is lossless: training sees the very pixels the model saw live, not a re-encoding of them."""
    first = frames[min(frames)]
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (w, h))
    if not writer.isOpened():
        raise CorrectionError(f"cannot write video {path}")
    last = first
    for t in range(duration):
        img = frames.get(t, last)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h))
        last = img
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        for _ in range(fps):
            writer.write(bgr)
    writer.release()
