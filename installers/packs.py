"""Optional packs for the frozen app: the GPU build of llama.cpp, the torch backend.

A pack is a folder of Python packages (``pip install --target``) under ``<data dir>/packs/<pack>/``,
unpacked there by the user from the release page (installers/README.md): nothing is ever downloaded
silently. A frozen app finds its own modules first, so :func:`install_finder` puts a finder in front of
it that serves the packages a pack carries (and their submodules) from the pack instead.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path


def packs_dir() -> Path:
    env = os.environ.get("PRESENCE_PACKS_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(os.environ.get("PRESENCE_DATA_DIR") or platformdirs.user_data_dir("presence")) / "packs"


class PackFinder:
    """Finds the top-level packages that live in the pack folders, and everything below them."""

    def __init__(self, folders: list[Path]):
        self.folders = [str(f) for f in folders]
        self.names: dict[str, str] = {}
        for folder in folders:
            for entry in folder.iterdir():
                name = entry.name.split(".")[0] if entry.is_file() and entry.suffix in (".py", ".so", ".pyd") \
                    else entry.name
                if (entry.is_dir() and (entry / "__init__.py").exists()) or entry.is_file():
                    self.names.setdefault(name, str(folder))

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in self.names:
            return None
        return importlib.machinery.PathFinder.find_spec(name, [self.names[top]] if path is None else path)


def install_finder(root: Path | None = None) -> PackFinder | None:
    root = root or packs_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        return None
    finder = PackFinder(folders)
    sys.meta_path.insert(0, finder)
    sys.stderr.write(f"presence: packs in use: {', '.join(f.name for f in folders)} ({root})\n")
    return finder
