"""The frozen app's entry point: the same ``presence`` command as the pip-installed one, plus the optional
packs (installers/packs.py) the user unpacked."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not re-run the CLI
    import packs

    packs.install_finder()
    from app.cli import main

    sys.exit(main())
