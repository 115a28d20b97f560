"""``make dist``: freeze Presence with PyInstaller and pack it for this platform, with the version from pyproject.toml.

    python installers/build.py                 # lite bundle, this platform's packages
    python installers/build.py --flavour full  # with torch (release.yml)
    python installers/build.py --skip-freeze   # re-pack an existing bundle

Linux → dist/presence_<v>_amd64.deb + dist/presence-<v>-linux-x86_64.tar.gz; Windows → dist/Presence-<v>-setup.exe
(NSIS); macOS → dist/Presence-<v>.dmg (dmgbuild). Prints one line per artifact with its size, and the build time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
sys.path.insert(0, str(INSTALLERS / "linux"))


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def tree_size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def freeze(flavour: str, dist: Path, work: Path) -> Path:
    env = dict(os.environ, PRESENCE_BUNDLE=flavour)
    subprocess.run([sys.executable, "-m", "PyInstaller", str(INSTALLERS / "presence.spec"), "--noconfirm",
                    "--log-level", "WARN", "--distpath", str(dist), "--workpath", str(work)], check=True, env=env,
                   cwd=ROOT)
    return dist / "presence"


def pack_linux(bundle: Path, out: Path, work: Path, formats: set[str], level: int = 6) -> list[Path]:
    import package

    v = version()
    made = [package.build_deb(bundle, v, out, work, level=level)] if "deb" in formats else []
    return made + ([package.build_tarball(bundle, v, out)] if "tar" in formats else [])


def pack_windows(bundle: Path, out: Path) -> list[Path]:
    exe = out / f"Presence-{version()}-setup.exe"
    makensis = shutil.which("makensis") or r"C:\Program Files (x86)\NSIS\makensis.exe"
    subprocess.run([makensis, "-V2", f"-DVERSION={version()}", f"-DSOURCE={bundle}", f"-DOUTFILE={exe}",
                    f"-DICON={ROOT / 'assets' / 'icons' / 'presence.ico'}", str(INSTALLERS / "windows" / "presence.nsi")], check=True)
    return [exe]


def pack_macos(dist: Path, out: Path) -> list[Path]:
    app = dist / "Presence.app"
    plist = (INSTALLERS / "macos" / "Info.plist").read_text().replace("@VERSION@", version())
    (app / "Contents" / "Info.plist").write_text(plist)
    shutil.copy(ROOT / "assets" / "icons" / "presence.icns", app / "Contents" / "Resources" / "presence.icns")
    identity = os.environ.get("MACOS_SIGN_IDENTITY")  # e.g. "Developer ID Application: NAME (TEAMID)"; unset: unsigned
    if identity:
        subprocess.run(["codesign", "--deep", "--force", "--options", "runtime", "--timestamp", "--sign", identity,
                        str(app)], check=True)
    dmg = out / f"Presence-{version()}.dmg"
    subprocess.run([sys.executable, "-m", "dmgbuild", "-s", str(INSTALLERS / "macos" / "dmg_settings.py"),
                    "-D", f"app={app}", "Presence", str(dmg)], check=True)
    return [dmg]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavour", choices=("lite", "full"), default="lite")
    ap.add_argument("--out", default=str(ROOT / "dist"), help="where the packages go")
    ap.add_argument("--work", default=str(ROOT / "build"), help="PyInstaller's work folder (its cache)")
    ap.add_argument("--formats", default="deb,tar", help="Linux: deb, tar or both (comma-separated)")
    ap.add_argument("--gzip-level", type=int, default=6, help="the .deb's gzip level (1 = fastest, for tests)")
    ap.add_argument("--skip-freeze", action="store_true", help="pack the bundle already in <out>/<flavour>")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    dist, work = out / args.flavour, Path(args.work).resolve() / f"pyi-{args.flavour}"
    t0 = time.monotonic()
    bundle = dist / "presence" if args.skip_freeze else freeze(args.flavour, dist, work)
    t_freeze = time.monotonic() - t0
    system = platform.system()
    if system == "Linux":
        artifacts = pack_linux(bundle, out, work, set(args.formats.split(",")), args.gzip_level)
    elif system == "Windows":
        artifacts = pack_windows(bundle, out)
    elif system == "Darwin":
        artifacts = pack_macos(dist, out)
    else:
        print(f"build.py: no packager for {system}; the bundle is {bundle}", file=sys.stderr)
        artifacts = []
    print(f"bundle {bundle}  {tree_size(bundle) / 1e6:.0f} MB  (freeze {t_freeze:.0f} s)")
    for a in artifacts:
        print(f"artifact {a}  {tree_size(a) / 1e6:.0f} MB")
    print(f"total build time {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
