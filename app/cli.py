"""The ``presence`` command line (DESIGN §8). Exit codes: 0 ok, 2 usage/config, 3 source, 4 model.

Subcommands other than ``run`` live in ``app/commands/<name>.py``, each with ``register(subparsers)``;
a module that is missing or fails to import is skipped, so one broken command never breaks the rest.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's decoder chatter is not our error line
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_MODEL = 0, 2, 3, 4
COMMAND_MODULES = ("eval", "models", "kv", "sessions")


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


def add_run(sub) -> None:
    p = sub.add_parser("run", help="watch a source and decide every second")
    p.add_argument("--source", default="", help="screen[:N], webcam[:N], window:TITLE, a video file or a URL "
                                                 "(default: the bundled demo clip)")
    p.add_argument("--backend", default=None, help="heuristic | lite | torch | llamacpp | openai")
    p.add_argument("--model", default=None, help="model directory, GGUF file or model id")
    p.add_argument("--mmproj", default=None, help="GGUF vision projector (found beside the model when omitted)")
    p.add_argument("--url", default=None, help="server URL for --backend openai")
    p.add_argument("--query", default=None, help="the standing instruction")
    p.add_argument("--headless", action="store_true", help="no window: print the timeline in the terminal")
    p.add_argument("--fast", action="store_true", help="run a file on the virtual clock, as fast as possible")
    p.add_argument("--log", default=None, help="write events to this JSONL file (created or truncated)")
    p.add_argument("--store", default=None, help="SQLite session store (default: one per session in the data dir)")
    p.add_argument("--config", default=None, help="settings file (default: $PRESENCE_CONFIG or the config dir)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of stream time")
    p.add_argument("--speak", dest="speak", action="store_true", default=None, help="speak responses")
    p.add_argument("--no-speak", dest="speak", action="store_false", help="do not speak")
    p.add_argument("--listen", dest="listen", action="store_true", default=None, help="listen to the microphone")
    p.add_argument("--no-listen", dest="listen", action="store_false")
    p.add_argument("--kv-cache", default=None, help="torch backend KV cache: full | tailor | quantized | sink")
    p.add_argument("--max-pixels", type=int, default=None, help="resize frames to at most this many pixels")
    p.add_argument("--quiet", action="store_true", help="do not print the timeline")
    p.set_defaults(func=cmd_run)


def apply_run_flags(settings, args) -> None:
    b = settings.backend
    for flag, attr in (("backend", "name"), ("model", "model"), ("mmproj", "mmproj"), ("url", "url"),
                       ("kv_cache", "kv_cache")):
        value = getattr(args, flag)
        if value is not None:
            setattr(b, attr, value)
    if args.source:
        settings.capture.source = args.source
    if args.max_pixels is not None:
        settings.capture.max_pixels = args.max_pixels
    if args.speak is not None:
        settings.voice.speak = args.speak
    if args.listen is not None:
        settings.voice.listen = args.listen


def cmd_run(args) -> int:
    from app.config import ConfigError, load_settings, validate
    from app.timeline_printer import TimelinePrinter
    from app.wiring import build_session
    from engine.backends.base import BackendError
    from engine.source import SourceError

    try:
        settings = load_settings(args.config)
        apply_run_flags(settings, args)
        validate(settings)
    except ConfigError as exc:
        return fail(EXIT_USAGE, str(exc))
    live = settings.capture.source.split(":")[0] in ("screen", "webcam", "window", "rtsp", "http", "https")
    if args.fast and live:
        return fail(EXIT_USAGE, "--fast needs a video file (a live source cannot run faster than real time)")
    if args.duration is not None and args.duration <= 0:
        return fail(EXIT_USAGE, "--duration must be positive")
    if not args.headless and not os.environ.get("PRESENCE_FORCE_HEADLESS"):
        try:
            from app.gui import run_gui
        except ImportError:
            run_gui = None
        if run_gui is not None:
            return run_gui(settings, args)
    try:
        built = build_session(settings, fast=args.fast, log=args.log, store=args.store, duration=args.duration)
    except SourceError as exc:
        return fail(EXIT_SOURCE, str(exc))
    except BackendError as exc:
        return fail(EXIT_MODEL, str(exc))
    try:
        built.session.open_source()  # a bad source fails here, before voice or anything else starts
    except SourceError as exc:
        built.close()
        return fail(EXIT_SOURCE, str(exc))
    if not args.quiet:
        built.bus.subscribe(TimelinePrinter(sys.stdout))
    extras = []
    try:
        from app.voice_wiring import attach_voice  # added by the voice issue
    except ImportError:
        attach_voice = None
    if attach_voice is not None and (settings.voice.speak or settings.voice.listen):
        extras = attach_voice(built, settings, stderr=sys.stderr)
    if args.query:
        built.session.submit_query(args.query, source="cli", at=0.0 if args.fast else None)
    prev = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: built.session.stop())
    try:
        result = built.session.run()
    finally:
        signal.signal(signal.SIGINT, prev)
        for x in extras:
            x.close()
        built.close()
    if result.error_kind == "source":
        return fail(EXIT_SOURCE, result.error or "source error")
    if result.error_kind == "backend":
        return fail(EXIT_MODEL, result.error or "backend error")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="presence", description="Presence watches a stream and decides every second "
                                                 "to stay silent, speak, or delegate.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_run(sub)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"app.commands.{name}")
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        try:
            from app.gui import main as gui_main
        except ImportError as exc:
            return fail(EXIT_USAGE, f"the desktop app is not available ({exc}); try `presence run --headless`")
        return gui_main()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
