"""``presence models list|pull|rm`` — the model manager on the command line (core: app/models.py)."""

from __future__ import annotations

import sys
import threading
import time

EXIT_OK, EXIT_USAGE, EXIT_MODEL = 0, 2, 4


def register(sub) -> None:
    p = sub.add_parser("models", help="list, pull and remove models (Hugging Face cache)")
    msub = p.add_subparsers(dest="models_command")
    ls = msub.add_parser("list", help="presets and cached models, with disk usage")
    ls.set_defaults(func=cmd_list)
    pull = msub.add_parser("pull", help="download a preset or owner/name into the cache (resumes)")
    pull.add_argument("name", help="a preset key (see `presence models list`) or a repo id owner/name")
    pull.add_argument("--include", action="append", default=None, help="only files matching this pattern")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")
    pull.set_defaults(func=cmd_pull)
    rm = msub.add_parser("rm", help="delete a model from the cache")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_rm)
    p.set_defaults(func=cmd_list)


def _store():
    from app.models import ModelStore

    return ModelStore()


def cmd_list(args) -> int:
    from app.models import human

    store = _store()
    rows = store.list()
    print(f"{'KEY':16} {'REPOSITORY':52} {'STATE':10} {'SIZE':>10}  BACKEND")
    for e in rows:
        key = e.preset.key if e.preset else "-"
        if e.installed:
            state = "installed"
        elif e.partial_bytes:
            state = "partial"
        else:
            state = "-"
        size = human(e.size_on_disk + e.partial_bytes) if (e.size_on_disk or e.partial_bytes) else (
            f"~{e.preset.download_gb:.1f} GB" if e.preset else "-")
        print(f"{key:16} {e.repo_id:52} {state:10} {size:>10}  {e.preset.backend if e.preset else '?'}")
    print(f"cache: {store.cache_dir}  ({human(store.disk_usage())} used)")
    return EXIT_OK


def cmd_pull(args) -> int:
    from app.models import Cancelled, ModelError, human

    store = _store()
    cancel = threading.Event()
    last = [0.0]

    def show(p) -> None:
        now = time.monotonic()
        if args.quiet or (now - last[0] < 0.2 and p.done < p.total):
            return
        last[0] = now
        width = 30
        fill = int(width * p.fraction)
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {p.fraction * 100:5.1f}%  "
                         f"{human(p.done)}/{human(p.total)}  {p.files_done}/{p.files_total} {p.file[:40]:40}")
        sys.stderr.flush()

    try:
        path = store.pull(args.name, on_progress=show, cancel=cancel,
                          allow=tuple(args.include) if args.include else None)
    except KeyboardInterrupt:
        sys.stderr.write("\npresence: pull interrupted; run it again to resume\n")
        return 130
    except Cancelled as exc:
        sys.stderr.write(f"\npresence: {exc}\n")
        return EXIT_MODEL
    except ModelError as exc:
        sys.stderr.write(f"presence: error: {exc}\n")
        return EXIT_MODEL
    if not args.quiet:
        sys.stderr.write("\n")
    print(f"{path}")
    return EXIT_OK


def cmd_rm(args) -> int:
    from app.models import ModelError, human

    try:
        freed = _store().remove(args.name)
    except ModelError as exc:
        sys.stderr.write(f"presence: error: {exc}\n")
        return EXIT_MODEL
    print(f"removed {args.name} ({human(freed)} freed)")
    return EXIT_OK
