"""``presence replay LOG_OR_STORE [--session ID] [--no-silence]``: a recorded session in the terminal
timeline, line for line as ``presence run --headless`` printed it live. Exit 2 on a file it cannot read."""

from __future__ import annotations

import sys


def cmd_replay(args) -> int:
    from app.replay import ReplayError, open_recorded, print_timeline

    try:
        recorded = open_recorded(args.path, args.session)
    except ReplayError as exc:
        sys.stderr.write(f"presence: error: {exc}\n")
        return 2
    print_timeline(recorded, sys.stdout, show_silence=not args.no_silence)
    return 0


def register(sub) -> None:
    p = sub.add_parser("replay", help="re-render a recorded session (JSONL log or session store) in the terminal")
    p.add_argument("path", help="a --log JSONL file or a session store (.sqlite)")
    p.add_argument("--session", default=None, help="session id or prefix (store with several sessions)")
    p.add_argument("--no-silence", action="store_true", help="hide silent seconds")
    p.set_defaults(func=cmd_replay)
