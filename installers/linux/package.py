"""Pack a one-folder bundle as a gzip .deb and a portable .tar.gz (no root needed: dpkg-deb --root-owner-group).

.deb layout: the bundle in /opt/presence, ``/usr/bin/presence`` a symlink to it, the desktop entry and the
hicolor icons. No maintainer scripts: dpkg alone installs and removes every file, so an uninstall leaves
nothing but the user's own settings and data (in their home directory, never touched by the package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ICONS = HERE.parents[1] / "assets" / "icons"
# What the bundle does not carry (PyInstaller leaves the C library, GL/EGL and the X client libraries to the
# system) plus PortAudio for voice; Debian 12 / Ubuntu 22.04 names.
DEPENDS = ("libc6 (>= 2.31), libegl1, libgl1, libfontconfig1, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, "
           "libxcb-icccm4, libxcb-keysyms1, libxcb-xinerama0, libxcb-randr0, libxcb-render-util0, libxcb-image0, "
           "libxcb-shape0, libdbus-1-3")
RECOMMENDS = "libportaudio2"


def stage(bundle: Path, root: Path) -> None:
    """The installed file tree under ``root`` (shared by the .deb and the tarball)."""
    try:  # hard links: the bundle is ~1 GB and the package only reads it
        shutil.copytree(bundle, root / "opt" / "presence", symlinks=True, copy_function=os.link)
    except OSError:  # another filesystem
        shutil.rmtree(root / "opt" / "presence", ignore_errors=True)
        shutil.copytree(bundle, root / "opt" / "presence", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "presence").symlink_to("/opt/presence/presence")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(HERE / "presence.desktop", apps / "presence.desktop")
    hicolor = root / "usr" / "share" / "icons" / "hicolor"
    for png in sorted((ICONS / "png").glob("presence-*.png")):
        size = png.stem.split("-")[1]
        if int(size) > 512:
            continue
        d = hicolor / f"{size}x{size}" / "apps"
        d.mkdir(parents=True)
        shutil.copy(png, d / "presence.png")
    (hicolor / "scalable" / "apps").mkdir(parents=True)
    shutil.copy(ICONS / "presence.svg", hicolor / "scalable" / "apps" / "presence.svg")


def _installed_kb(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) // 1024


def build_deb(bundle: Path, version: str, out_dir: Path, work: Path, arch: str = "amd64", level: int = 6) -> Path:
    root = work / "deb"
    shutil.rmtree(root, ignore_errors=True)
    stage(bundle, root)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: presence\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        "Maintainer: Presence developers <presence@localhost>\n"
        f"Installed-Size: {_installed_kb(root)}\n"
        f"Depends: {DEPENDS}\n"
        f"Recommends: {RECOMMENDS}\n"
        "Section: utils\nPriority: optional\n"
        "Description: desktop companion that watches a stream and decides every second\n"
        " Presence watches a screen, window, webcam or video and decides every second to stay\n"
        " silent, speak, or delegate, locally and offline. This build carries the lite CPU model.\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"presence_{version}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", f"-z{level}", "--build", str(root), str(deb)],
                   check=True, stdout=subprocess.DEVNULL)
    return deb


def build_tarball(bundle: Path, version: str, out_dir: Path, arch: str = "x86_64") -> Path:
    """Portable: unpack anywhere and run ``presence-<version>/presence``; share/ has the desktop entry and icon."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"presence-{version}"
    tgz = out_dir / f"{name}-linux-{arch}.tar.gz"
    with tarfile.open(tgz, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=name)
        tar.add(HERE / "presence.desktop", arcname=f"{name}/share/presence.desktop")
        tar.add(ICONS / "presence.svg", arcname=f"{name}/share/presence.svg")
    return tgz
