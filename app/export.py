"""Export a session (Qt-free): JSONL events, SRT of the responses, a Markdown summary.

Input is the event list of DESIGN §6 (what the UI collected, or ``load_jsonl`` of a ``--log`` file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from engine.events import Event, EventType

SRT_MAX_S = 4.0  # a subtitle stays at most this long, or until the next response


def load_jsonl(path: str | Path) -> list[Event]:
    """Events from a JSONL log; a broken line (a crash mid-write) is skipped, never fatal."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and "type" in ev:
            out.append(ev)
    return out


def to_jsonl(events: Iterable[Event]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":"), default=str) + "\n" for e in events)


def responses(events: Iterable[Event]) -> list[Event]:
    """Decisions that said something (respond or delegate with a holding note)."""
    return [e for e in events if e.get("type") == EventType.DECISION and e.get("action") in ("response", "delegate")
            and e.get("text")]


def srt_time(seconds: float) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(events: Iterable[Event]) -> str:
    """One cue per response, from its tick until the next response (at most SRT_MAX_S seconds)."""
    rs = responses(events)
    cues = []
    for i, e in enumerate(rs):
        start = float(e["t"])
        end = start + SRT_MAX_S
        if i + 1 < len(rs):
            end = min(end, float(rs[i + 1]["t"]))
        end = max(end, start + 0.5)
        cues.append(f"{i + 1}\n{srt_time(start)} --> {srt_time(end)}\n{e['text']}\n")
    return "\n".join(cues)


def clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600:d}:{t % 3600 // 60:02d}:{t % 60:02d}"


def to_markdown(events: list[Event]) -> str:
    """A readable summary: source, counts, latency, queries, responses, delegate results, summaries."""
    started = next((e for e in events if e.get("type") == EventType.SESSION_STARTED), {})
    ended = next((e for e in reversed(events) if e.get("type") == EventType.SESSION_ENDED), {})
    decisions = [e for e in events if e.get("type") == EventType.DECISION]
    skipped = [e for e in events if e.get("type") == EventType.SKIPPED]
    totals = sorted(float(e.get("latency_ms", {}).get("total", 0.0)) for e in decisions)
    p50 = totals[len(totals) // 2] if totals else 0.0
    p95 = totals[min(len(totals) - 1, int(len(totals) * 0.95))] if totals else 0.0
    counts = {a: sum(1 for e in decisions if e.get("action") == a) for a in ("silence", "response", "delegate")}
    session = started.get("session") or (events[0].get("session") if events else "")
    lines = [f"# Presence session {session}", ""]
    lines += [f"- Source: `{started.get('source', '?')}`", f"- Backend: `{started.get('backend', '?')}`",
              f"- Seconds: {len(decisions) + len(skipped)} ({counts['silence']} silent, {counts['response']} "
              f"responses, {counts['delegate']} delegated, {len(skipped)} skipped)",
              f"- Tick latency: p50 {p50:.0f} ms, p95 {p95:.0f} ms"]
    if ended.get("error"):
        lines.append(f"- Ended with error: {ended['error']}")
    sections = [
        ("Instructions", [e for e in events if e.get("type") in (EventType.QUERY, EventType.UTTERANCE)], "text"),
        ("Responses", responses(events), "text"),
        ("Delegated answers", [e for e in events if e.get("type") == EventType.DELEGATE_RESULT], "result"),
        ("Summaries", [e for e in events if e.get("type") == EventType.SUMMARY], EventType.SUMMARY),
    ]
    for title, evs, key in sections:
        if not evs:
            continue
        lines += ["", f"## {title}", ""]
        for e in evs:
            text = str(e.get(key, "")).replace("\n", " ").strip()
            lines.append(f"- **{clock(float(e.get('t', 0)))}** {text}")
    return "\n".join(lines) + "\n"


def export_session(events: list[Event], directory: str | Path, stem: str = "session") -> dict[str, Path]:
    """Write ``stem.jsonl``, ``stem.srt`` and ``stem.md`` into ``directory``; returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": d / f"{stem}.jsonl", "srt": d / f"{stem}.srt", "md": d / f"{stem}.md"}
    paths["jsonl"].write_text(to_jsonl(events), encoding="utf-8")
    paths["srt"].write_text(to_srt(events), encoding="utf-8")
    paths["md"].write_text(to_markdown(events), encoding="utf-8")
    return paths
