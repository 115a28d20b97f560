"""The ``presence`` command line (docs/architecture.md §11). Exit codes: 0 ok, 2 usage/config, 3 source,
4 model, 5 the log or store could not be written mid-session.

Subcommands other than ``run`` live in ``app/commands/<name>.py``, each with ``register(subparsers)``.
Settings reach ``run`` from the schema in ``app/config.py``: file < environment < flags.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's decoder chatter is not our error line
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL, EXIT_WRITE = 0, 2, 3, 4, 5
COMMAND_MODULES = ("eval", "models", "kv", "sessions", "train", "replay")


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2."""

    def error(self, message: str):  # noqa: D401
        sys.stderr.write(f"presence: error: {message} (see presence {self.prog.split()[-1]} --help)\n")
        sys.exit(EXIT_USAGE)


def fail(code: int, message: str) -> int:
    sys.stderr.write(f"presence: error: {message}\n")
    return code


# ``presence run`` flags that set a setting: flag → the setting's dotted path. Their type, choices and
# help text come from the settings schema (app/config.py), so a flag can never drift from its setting;
# any other setting is reachable with ``--set section.key=value``.
RUN_SETTING_FLAGS = {
    "--source": "capture.source",
    "--backend": "backend.name",
    "--model": "backend.model",
    "--mmproj": "backend.mmproj",
    "--url": "backend.url",
    "--kv-cache": "backend.kv_cache",
    "--max-pixels": "capture.max_pixels",
    "--brain": "brain.kind",
    "--on-write-error": "storage.on_write_error",
}
RUN_SWITCH_FLAGS = {"speak": "voice.speak", "listen": "voice.listen"}  # --speak / --no-speak, …
RUN_REPEATABLE_FLAGS = {"--source"}  # several sources: several streams on one model (run_streams)


def _schema_arg(key):
    """argparse ``type`` that validates through the schema (one line naming the setting)."""
    from app.config import ConfigError, coerce

    def parse(text: str):
        try:
            return coerce(key, text, from_text=True)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = key.path
    return parse


def add_run(sub) -> None:
    from app.config import schema_keys

    keys = schema_keys()
    p = sub.add_parser("run", help="watch a source and decide every second")
    for flag, path in RUN_SETTING_FLAGS.items():
        key = keys[path]
        named = key.choices and all(str(c) in key.doc for c in key.choices if c)  # the doc already lists them
        choices = f" ({' | '.join(map(str, key.choices))})" if key.choices and not named else ""
        repeat = flag in RUN_REPEATABLE_FLAGS
        p.add_argument(flag, dest=path, default=None, type=_schema_arg(key), metavar=key.name.upper(),
                       action="append" if repeat else "store",
                       help=f"{key.doc}{choices} [{path}]" + ("; repeat it to watch several at once" if repeat else ""))
    for name, path in RUN_SWITCH_FLAGS.items():
        p.add_argument(f"--{name}", dest=path, action="store_true", default=None, help=f"{keys[path].doc} [{path}]")
        p.add_argument(f"--no-{name}", dest=path, action="store_false")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="set any setting for this run (repeatable), e.g. --set talk.cooldown_s=5")
    p.add_argument("--query", default=None, help="the standing instruction")
    p.add_argument("--headless", action="store_true", help="no window: print the timeline in the terminal")
    p.add_argument("--fast", action="store_true", help="run a file on the virtual clock, as fast as possible")
    p.add_argument("--log", default=None, help="write events to this JSONL file (created or truncated)")
    p.add_argument("--store", default=None, help="SQLite session store (default: one per session in the data dir)")
    p.add_argument("--config", default=None, help="settings file (default: $PRESENCE_CONFIG or the config dir)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of stream time")
    p.add_argument("--quiet", action="store_true", help="do not print the timeline")
    p.add_argument("--important", type=int, action="append", default=[], metavar="N",
                   help="with several --source: serve stream N (1-based, in --source order) first (repeatable)")
    p.set_defaults(func=cmd_run)


def apply_run_flags(settings, args) -> None:
    """Command-line overrides, the last and strongest settings source."""
    from app.config import apply_overrides, set_value

    for path in (*RUN_SETTING_FLAGS.values(), *RUN_SWITCH_FLAGS.values()):
        value = getattr(args, path, None)
        if isinstance(value, list):  # a repeatable flag: the settings hold the last (run_streams takes all)
            value = value[-1]
        if value is not None:
            set_value(settings, path, value)
    apply_overrides(settings, args.overrides)


def cmd_run(args) -> int:
    import math

    from app.config import ConfigError, load_settings, validate

    try:
        settings = load_settings(args.config)
        apply_run_flags(settings, args)
        validate(settings)
    except ConfigError as exc:
        return fail(EXIT_USAGE, str(exc))
    sources = getattr(args, "capture.source", None) or [settings.capture.source]
    live = any(src.split(":")[0] in ("screen", "webcam", "window", "rtsp", "http", "https") for src in sources)
    if args.fast and live:
        return fail(EXIT_USAGE, "--fast needs a video file (a live source cannot run faster than real time)")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        return fail(EXIT_USAGE, "--duration must be positive (seconds)")
    if len(sources) > 1:
        return run_streams(settings, args, sources)
    if not args.headless:
        from app.gui import display_available, run_gui

        if display_available():
            return run_gui(settings, args)
        sys.stderr.write("presence: no display, running headless\n")
    return run_headless(settings, args)


@contextlib.contextmanager
def ending_signals(stop):
    """Ctrl-C, kill and a closed terminal all call ``stop`` (the session ends cleanly, session_ended is
    written); yields the signals received, so the process can exit 128 + the signal's number, as shells expect."""
    received: list[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop()

    handled = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


EXIT_FOR_ERROR_KIND = {"source": EXIT_SOURCE, "backend": EXIT_MODEL, "write": EXIT_WRITE}  # SessionResult.error_kind


def _build_exit(exc: Exception) -> int:
    """The exit code of a session (or streams) that could not be built."""
    from engine.backends.base import BackendError
    from engine.source import SourceError

    if isinstance(exc, SourceError):
        return EXIT_SOURCE
    if isinstance(exc, BackendError):
        return EXIT_MODEL
    return EXIT_USAGE  # SinkError: --log / --store cannot be opened, the argument is the problem


def run_headless(settings, args) -> int:
    from app.timeline_printer import TimelinePrinter
    from app.wiring import build_session
    from engine.backends.base import BackendError
    from engine.log import SinkError
    from engine.source import SourceError

    try:
        built = build_session(settings, fast=args.fast, log=args.log, store=args.store, duration=args.duration)
    except (SourceError, BackendError, SinkError) as exc:
        return fail(_build_exit(exc), str(exc))
    if not args.quiet:
        built.bus.subscribe(TimelinePrinter(sys.stdout))
    if args.query:
        built.session.submit_query(args.query, source="cli", at=0.0 if args.fast else None)
    with ending_signals(built.session.stop) as received:
        try:
            result = built.session.run()
        finally:
            built.close()
    loss = built.loss_note()
    if result.error_kind:
        message = result.error or f"{result.error_kind} error"
        if result.error_kind == "write" and loss:
            message += f" ({loss})"
        return fail(EXIT_FOR_ERROR_KIND.get(result.error_kind, EXIT_MODEL), message)
    if loss:
        return fail(EXIT_WRITE, loss)
    if received:
        return 128 + int(received[0])
    return EXIT_OK


def run_streams(settings, args, sources: list[str]) -> int:
    """``presence run --source A --source B …``: one stream per source on one loaded model, headless, each with
    its own log and store (``--log run.jsonl`` → ``run.s1.jsonl``, ``run.s2.jsonl``, …) and its timeline lines
    prefixed with its name. A stream whose source fails ends alone (one line); the exit code is the worst."""
    from app.timeline_printer import TimelinePrinter
    from app.wiring import build_streams
    from engine.backends.base import BackendError
    from engine.log import SinkError

    bad = [n for n in args.important if not 1 <= n <= len(sources)]
    if bad:
        return fail(EXIT_USAGE, f"--important {bad[0]}: there are {len(sources)} streams (1..{len(sources)})")
    if not args.headless:
        sys.stderr.write("presence: several sources run headless (the window: File → Watch several sources…)\n")
    try:
        built = build_streams(settings, sources, important=tuple(args.important), fast=args.fast, log=args.log,
                              store=args.store, duration=args.duration)
    except (BackendError, SinkError) as exc:
        return fail(_build_exit(exc), str(exc))
    manager = built.manager
    for spec, one in zip(manager.specs, built.streams, strict=True):
        if one is None:
            continue
        if not args.quiet:
            one.bus.subscribe(TimelinePrinter(_Prefixed(sys.stdout, f"{spec.name} ")))
        if args.query:
            one.session.submit_query(args.query, source="cli", at=0.0 if args.fast else None)
    with ending_signals(manager.stop) as received:
        try:
            results = manager.run()
        finally:
            built.close()
    codes = []
    for spec, result, error in zip(manager.specs, results, manager.errors, strict=True):
        if result is None and error is not None:  # it never started, and said so then
            codes.append(EXIT_SOURCE)
        elif error is not None:
            codes.append(fail(EXIT_FOR_ERROR_KIND.get(result.error_kind, EXIT_MODEL), f"stream {spec.name}: {error}"))
    loss = "; ".join(one.loss_note() for one in built.streams if one is not None and one.loss_note())
    if loss:
        codes.append(fail(EXIT_WRITE, loss))
    if received:
        return 128 + int(received[0])
    return max(codes, default=EXIT_OK)


class _Prefixed:
    """A text stream that starts every line with ``prefix`` (a stream's name in the terminal timeline)."""

    def __init__(self, out, prefix: str):
        self.out, self.prefix = out, prefix

    def write(self, text: str) -> int:
        body = "".join(self.prefix + line for line in text.splitlines(keepends=True))
        return self.out.write(body)

    def flush(self) -> None:
        self.out.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="presence", description="Presence watches a stream and decides every second "
                                                 "to stay silent, speak, or delegate.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_run(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(f"app.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        from app.gui import main as gui_main

        return gui_main()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
