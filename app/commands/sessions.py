"""``presence sessions`` and ``presence ask SESSION "what happened around 10:32?"``.

Sessions are found in the per-session SQLite stores under the data dir (or ``--store FILE``).
``ask`` answers only from the store: the events that match the question's words, or lie around a
time it names (``10:32``, ``632s``, ``at 5 minutes``), quoted with their times (engine/recall.py);
"Nothing like that was seen in this session." when none do. A small local model is never asked to
write the answer (it invents); with ``[brain] kind = "openai"`` (a capable model) its one-paragraph
answer from the retrieved events comes first, cleaned of markup, and the quoted events follow.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path

from engine import recall
from engine.events import EventType
from engine.log import SinkError, SqliteStore


def _stores(store: str | None) -> list[Path]:
    from app.retention import session_stores

    return session_stores(store)


def parse_time(question: str) -> float | None:
    """Stream time in seconds from "10:32" (mm:ss or h:mm:ss), "632s", "632 seconds", "5 minutes"."""
    m = re.search(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b", question)
    if m:
        a, b, c = int(m.group(1)), int(m.group(2)), m.group(3)
        return a * 3600 + b * 60 + int(c) if c else a * 60 + b
    m = re.search(r"\b(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?)\b", question)
    if m:
        return float(m.group(1))
    m = re.search(r"\b(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?)\b", question)
    if m:
        return float(m.group(1)) * 60
    return None


def resolve_time(question: str, started_wall: str | None, end_t: float) -> float | None:
    """Stream seconds for the question. "10:32" is first read as stream time (mm:ss); when that lies
    past the session's end, as the local wall-clock time 10:32 during the session."""
    t = parse_time(question)
    m = re.search(r"\b(\d{1,2}):(\d{2})\b(?!:)", question)
    if m and started_wall and (t is None or t > end_t + 60):
        import datetime as dt

        try:
            start = dt.datetime.fromisoformat(started_wall).astimezone()  # local time zone
        except ValueError:
            return t
        h, mi = int(m.group(1)), int(m.group(2))
        if h < 24 and mi < 60:
            target = start.replace(hour=h, minute=mi, second=0, microsecond=0)
            if target < start - dt.timedelta(minutes=1):
                target += dt.timedelta(days=1)
            offset = (target - start).total_seconds()
            if -60 <= offset <= end_t + 60:
                return max(0.0, offset)
    return t


def describe(e: dict) -> str:
    t = e["t"]
    stamp = f"{int(t) // 60:02d}:{int(t) % 60:02d}"
    body = e.get("text") or e.get("summary") or e.get("query") or e.get("message") or ""
    kind = e.get("action", e["type"])
    return f"[{stamp}] {kind}: {body}"


def retrieve(db: SqliteStore, session: str, question: str, window_s: float = 60.0, limit: int = 40) -> list[dict]:
    """Events near the asked-about time, plus FTS matches for the question's words."""
    all_events = db.events(session)
    events = [e for e in all_events if e["type"] in (EventType.DECISION, EventType.QUERY, EventType.UTTERANCE, EventType.SUMMARY, EventType.DELEGATE_RESULT)]
    chosen: dict[tuple, dict] = {}
    started = next((s["started_wall"] for s in db.sessions() if s["session"] == session), None)
    t = resolve_time(question, started, max((e["t"] for e in all_events), default=0.0))
    if t is not None:
        for e in events:
            if abs(e["t"] - t) <= window_s and (e["type"] != EventType.DECISION or e.get("action") != "silence"):
                chosen[(e["t"], e["type"], e.get("text", ""))] = e
    words = [w for w in re.findall(r"[A-Za-z0-9]{3,}", question) if w.lower() not in
             {"what", "when", "happened", "around", "the", "did", "was", "were", "who", "how", "about", "say"}]
    if words:
        try:
            for e in db.search(" OR ".join(words), session=session, limit=limit):
                chosen[(e["t"], e["type"], e.get("text", ""))] = e
        except Exception:  # noqa: BLE001 - an FTS syntax problem falls back to time retrieval only
            pass
    return sorted(chosen.values(), key=lambda e: e["t"])[:limit]


def cmd_sessions(args) -> int:
    if args.action == "rm":
        return cmd_rm(args)
    if args.action not in ("", "list"):
        sys.stderr.write(f"presence: error: unknown sessions action {args.action!r} (list | rm ID…)\n")
        return 2
    from app.retention import list_sessions

    found, warnings = list_sessions(_stores(args.store))
    for line in warnings:
        sys.stderr.write(f"presence: warning: {line}\n")
    if not found:
        print("no sessions yet")
        return 0
    for i in found:
        print(f"{i.session}  {i.started_wall[:19]}  {i.backend:<9} {i.seconds:>6} s  {i.source}  ({i.store})")
    return 0


def _unreadable(path: Path, exc: Exception) -> str:
    if isinstance(exc, SinkError):  # already one line naming the file
        return str(exc)
    return f"cannot read the session store {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _open_session(store: str | None, prefix: str) -> tuple[SqliteStore, str] | str:
    """The store holding the session (opened read-only: asking never writes) and its full id, or the
    one error line: no such session, or the first store that could not be read (a corrupt or foreign
    file is skipped while another store may still hold the session)."""
    unreadable = ""
    for path in _stores(store):
        db = None
        try:
            db = SqliteStore(path, readonly=True)
            found = next((s["session"] for s in db.sessions() if s["session"].startswith(prefix)), None)
        except (OSError, sqlite3.Error) as exc:
            unreadable = unreadable or _unreadable(path, exc)
            found = None
        if found is not None:
            return db, found
        if db is not None:
            db.close()
    return unreadable or f"no session {prefix!r} (see `presence sessions`)"


def _brain_answer(args, question: str, context: str) -> str:
    """A capable configured brain's answer (``[brain] kind = "openai"``), markup removed; '' otherwise."""
    from app.brains import build_brain
    from app.config import load_settings

    settings = load_settings(args.config)
    if settings.brain.kind != "openai":
        return ""  # the local SmolLM2 and test brains would invent: the quoted events are the answer
    brain = build_brain(settings.brain)
    text = brain.ask(question + "\nAnswer only from the recorded events; say so if they do not tell.", context,
                     None, settings.brain.timeout_s)
    lines = [ln for ln in recall.clean(text).splitlines() if not re.search(r"untrusted|delegated question", ln, re.I)]
    return " ".join(lines).strip()


def cmd_ask(args) -> int:
    from app.config import ConfigError
    from engine.brain import BrainError

    opened = _open_session(args.store, args.session)
    if isinstance(opened, str):
        sys.stderr.write(f"presence: error: {opened}\n")
        return 2
    db, session = opened
    try:  # a store damaged past its session table
        events = db.events(session)
        started = next((s["started_wall"] for s in db.sessions() if s["session"] == session), None)
    except (OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"presence: error: {_unreadable(db.path, exc)}\n")
        return 2
    at = resolve_time(args.question, started, max((e["t"] for e in events), default=0.0))
    if args.show_context:
        print("\n".join(describe(e) for e in retrieve(db, session, args.question)) or "(nothing retrieved)")
    found = recall.find(args.question, events, at)
    if not found:
        print(recall.NOTHING)
        return 0
    context = "\n".join(f"[{recall.stamp(m.t)}] {recall.KINDS[m.kind]}: {m.text}" for m in found)
    try:
        said = _brain_answer(args, args.question, context)
    except (BrainError, ConfigError) as exc:
        sys.stderr.write(f"presence: warning: the brain could not answer ({exc}); the recorded events follow\n")
        said = ""
    if said:
        print(said)
    print(recall.answer(args.question, events, at))
    return 0


def cmd_rm(args) -> int:
    """``presence sessions rm ID…``: delete recorded sessions (their events, text and search index)."""
    from app.models import human
    from app.retention import delete_sessions

    if not args.ids:
        sys.stderr.write("presence: error: sessions rm needs at least one session id (see presence sessions)\n")
        return 2
    try:
        out = delete_sessions(_stores(args.store), args.ids)
    except (OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"presence: error: cannot delete: {exc}\n")
        return 2
    missing = [i for i in args.ids if not any(s.startswith(i) for s in out.sessions)]
    for s in out.sessions:
        print(f"deleted {s}")
    if out.sessions:
        print(f"{len(out.sessions)} session(s) deleted, {human(out.bytes_freed)} freed")
    if missing:
        sys.stderr.write(f"presence: error: no session {', '.join(missing)} (see presence sessions)\n")
        return 2
    return 0


def register(sub) -> None:
    p = sub.add_parser("sessions", help="list recorded sessions, or delete them: presence sessions rm ID…")
    p.add_argument("action", nargs="?", default="", help="list (default) | rm")
    p.add_argument("ids", nargs="*", help="for rm: session ids (a unique prefix is enough)")
    p.add_argument("--store", default=None, help="a session store file (default: all under the data dir)")
    p.set_defaults(func=cmd_sessions)
    a = sub.add_parser("ask", help="ask about a recorded session, e.g. \"what happened around 10:32?\"")
    a.add_argument("session", help="session id (or a unique prefix)")
    a.add_argument("question")
    a.add_argument("--store", default=None)
    a.add_argument("--config", default=None)
    a.add_argument("--show-context", action="store_true", help="print what was retrieved from the store")
    a.set_defaults(func=cmd_ask)
