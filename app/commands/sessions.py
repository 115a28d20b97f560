"""``presence sessions`` and ``presence ask SESSION "what happened around 10:32?"``.

Sessions are found in the per-session SQLite stores under the data dir (or ``--store FILE``).
``ask`` retrieves events around a time mentioned in the question (``10:32``, ``632s``, ``at 5
minutes``) plus full-text matches, and answers through the configured brain (``[brain] kind``;
the local SmolLM2 brain when none is configured). Retrieved text reaches the brain quoted.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from engine.log import SqliteStore


def _stores(store: str | None) -> list[Path]:
    if store:
        return [Path(store)]
    from app.config import data_dir

    return sorted((data_dir() / "sessions").glob("*.sqlite"))


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
    events = [e for e in all_events if e["type"] in ("decision", "query", "utterance", "summary", "delegate_result")]
    chosen: dict[tuple, dict] = {}
    started = next((s["started_wall"] for s in db.sessions() if s["session"] == session), None)
    t = resolve_time(question, started, max((e["t"] for e in all_events), default=0.0))
    if t is not None:
        for e in events:
            if abs(e["t"] - t) <= window_s and (e["type"] != "decision" or e.get("action") != "silence"):
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
    rows = []
    for path in _stores(args.store):
        try:
            db = SqliteStore(path)
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"presence: warning: cannot read {path}: {exc}\n")
            continue
        for s in db.sessions():
            n = len(db.events(s["session"], "decision"))
            rows.append((s["started_wall"] or "", s["session"], s["source"] or "", s["backend"] or "", n, path))
        db.close()
    if not rows:
        print("no sessions yet")
        return 0
    for started, sid, source, backend, n, path in sorted(rows):
        print(f"{sid}  {started[:19]}  {backend:<9} {n:>6} s  {source}  ({path})")
    return 0


def cmd_ask(args) -> int:
    from app.brains import build_brain
    from app.config import ConfigError, load_settings
    from engine.brain import BrainError

    matches = []
    for path in _stores(args.store):
        db = SqliteStore(path)
        if any(s["session"] == args.session or s["session"].startswith(args.session) for s in db.sessions()):
            matches.append((db, next(s["session"] for s in db.sessions() if s["session"].startswith(args.session))))
        else:
            db.close()
    if not matches:
        sys.stderr.write(f"presence: error: no session {args.session!r} (see `presence sessions`)\n")
        return 2
    db, session = matches[0]
    context = "\n".join(describe(e) for e in retrieve(db, session, args.question))
    if args.show_context:
        print(context or "(nothing retrieved)")
    try:
        settings = load_settings(args.config)
        if not settings.brain.kind:
            settings.brain.kind = "llamacpp"  # offline default
        brain = build_brain(settings.brain)
        answer = brain.ask(args.question, context or "(no matching events)", None, settings.brain.timeout_s)
    except (BrainError, ConfigError) as exc:
        sys.stderr.write(f"presence: error: {exc}\n")
        return 4
    print(answer.strip())
    return 0


def register(sub) -> None:
    p = sub.add_parser("sessions", help="list recorded sessions")
    p.add_argument("--store", default=None, help="a session store file (default: all under the data dir)")
    p.set_defaults(func=cmd_sessions)
    a = sub.add_parser("ask", help="ask about a recorded session, e.g. \"what happened around 10:32?\"")
    a.add_argument("session", help="session id (or a unique prefix)")
    a.add_argument("question")
    a.add_argument("--store", default=None)
    a.add_argument("--config", default=None)
    a.add_argument("--show-context", action="store_true", help="print what was retrieved from the store")
    a.set_defaults(func=cmd_ask)
