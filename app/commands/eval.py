"""``presence eval make-suite DIR`` and ``presence eval run --suite DIR --backend B …`` (DESIGN §8).

    presence eval make-suite DIR [--seed S] [--spec suite.toml] [--quick]
    presence eval run --suite DIR --backend never,always,heuristic,lite [--model M] --out REPORT/
                      [--quick] [--only NAME] [--no-plots] [--config FILE]

Several backends (comma-separated) each get ``REPORT/<backend>/`` and one comparison table in
``REPORT/summary.md``. Exit codes: 0 ok, 2 usage (bad suite or spec), 4 a backend cannot load.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_MODEL = 0, 2, 4


def _err(code: int, message: str) -> int:
    sys.stderr.write(f"presence: error: {message}\n")
    return code


def backend_factory(name: str, model: str = "", config: str | None = None):
    """A zero-argument factory making a fresh, loaded backend per clip: the trivial baselines by name,
    everything else through the plugin registry and the same config the app uses."""
    from engine.eval.baselines import BASELINES

    if name in BASELINES:
        return BASELINES[name]
    from app import registry
    from app.config import load_settings
    from app.wiring import backend_config
    from engine.backends.base import ModelLoadError

    settings = load_settings(config)
    settings.backend.name = name
    if model:
        settings.backend.model = model
    try:
        cls = registry.get("presence.backend", name)
    except registry.PluginUnavailable as exc:
        raise ModelLoadError(str(exc)) from None
    cfg = backend_config(settings)

    def make():
        b = cls()
        b.load(cfg)
        return b

    return make


def cmd_make_suite(args) -> int:
    from engine.eval.scenarios import default_spec, load_spec, make_suite

    try:
        spec = load_spec(args.spec) if args.spec else default_spec()
    except (OSError, ValueError) as exc:
        return _err(EXIT_USAGE, f"bad suite spec: {exc}")
    if args.seed is not None:
        spec.seed = args.seed
    try:
        path = make_suite(args.dir, spec, quick=args.quick, progress=None if args.quiet else print)
    except OSError as exc:
        return _err(EXIT_USAGE, f"cannot write the suite to {args.dir}: {exc}")
    print(f"wrote {path}")
    return EXIT_OK


def run_backend(suite: str | Path, name: str, model: str = "", config: str | None = None, **kw):
    """One backend over a suite as ``presence eval run`` runs it: the config's backend settings, frame size,
    tick and perception hints (what the app would run with). ``kw``: ``run_suite``'s quick/only/progress."""
    from app.config import load_settings
    from engine.eval.runner import run_suite
    from engine.session import SessionOptions

    settings = load_settings(config)
    return run_suite(suite, backend_factory(name, model, config), name, model, hints=settings.backend.hints,
                     options_factory=lambda: SessionOptions(max_pixels=settings.capture.max_pixels,
                                                            tick_s=settings.backend.tick_s), **kw)


def cmd_run(args) -> int:
    from engine.backends.base import BackendError
    from engine.eval.runner import markdown_table, write_report

    if not (Path(args.suite) / "suite.json").is_file():
        return _err(EXIT_USAGE, f"no suite.json in {args.suite} (create one with `presence eval make-suite DIR`)")
    names = [n.strip() for n in args.backend.split(",") if n.strip()]
    if not names:
        return _err(EXIT_USAGE, "--backend needs at least one name")
    out = Path(args.out)
    rows = []
    for name in names:
        try:
            run = run_backend(args.suite, name, args.model or "", args.config, quick=args.quick, only=args.only,
                              progress=None if args.quiet else print)
        except BackendError as exc:
            return _err(EXIT_MODEL, f"{name}: {exc}")
        target = out if len(names) == 1 else out / name
        write_report(run, target, plots=not args.no_plots)
        rows.append((name, run.summary()))
    table = markdown_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("eval", help="interaction-quality suite: generate scenarios, run backends, score them")
    esub = p.add_subparsers(dest="eval_command", parser_class=type(p))
    m = esub.add_parser("make-suite", help="generate the procedural scenario clips and their ground truth")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=None, help="generator seed (default: the spec's, 7)")
    m.add_argument("--spec", default=None, help="suite definition TOML (default: the built-in suite)")
    m.add_argument("--quick", action="store_true", help="only the clips marked quick")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(func=cmd_make_suite)
    r = esub.add_parser("run", help="run backends over a suite and write report.json, report.md, timelines")
    r.add_argument("--suite", required=True)
    r.add_argument("--backend", required=True, help="comma-separated: never, always, heuristic, lite, torch, …")
    r.add_argument("--model", default=None)
    r.add_argument("--out", required=True, help="report directory")
    r.add_argument("--quick", action="store_true", help="one (the shortest) clip per family")
    r.add_argument("--only", default="", help="only clips whose name contains this")
    r.add_argument("--no-plots", action="store_true")
    r.add_argument("--config", default=None)
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_run)
    p.set_defaults(func=lambda a: _err(EXIT_USAGE, "choose a subcommand: presence eval make-suite | run"))
