"""The installer recipes that can be checked without building a bundle: the NSIS script compiles (against a
stand-in payload), the macOS plist carries the usage strings, the desktop entry and icons are complete, the
release workflow is well formed, and packs override bundled modules."""

from __future__ import annotations

import importlib
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INST = ROOT / "installers"
ICONS = ROOT / "assets" / "icons"
pytestmark = pytest.mark.dist


def _makensis(script: Path, payload: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["makensis", "-V2", "-DVERSION=1.2.3", f"-DSOURCE={payload}", f"-DOUTFILE={out}",
                           f"-DICON={ICONS / 'presence.ico'}", str(script)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def payload(tmp_path):
    """Stands in for the PyInstaller bundle: the two executables the script links to, and a data file."""
    p = tmp_path / "payload"
    (p / "_internal").mkdir(parents=True)
    for exe in ("presence.exe", "presence-gui.exe"):
        (p / exe).write_bytes(b"MZ stand-in")
    (p / "_internal" / "base_library.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return p


@pytest.mark.skipif(shutil.which("makensis") is None, reason="makensis not installed (apt-get install nsis; make apt)")
def test_nsis_script_compiles_and_a_broken_copy_does_not(payload, tmp_path):
    out = tmp_path / "Presence-1.2.3-setup.exe"
    r = _makensis(INST / "windows" / "presence.nsi", payload, out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    data = out.read_bytes()
    assert data[:2] == b"MZ" and len(data) > 30_000  # a PE installer with the NSIS stub and the payload
    assert b"Nullsoft" in data or b"NSIS" in data
    # negative control: the same script with one misspelt command must fail to compile
    broken = tmp_path / "broken.nsi"
    broken.write_text((INST / "windows" / "presence.nsi").read_text().replace("WriteUninstaller", "WriteUninstallr"))
    r = _makensis(broken, payload, tmp_path / "broken.exe")
    assert r.returncode != 0 and "WriteUninstallr" in r.stdout + r.stderr


def test_nsis_script_is_per_user_with_start_menu_and_uninstaller():
    text = (INST / "windows" / "presence.nsi").read_text()
    assert "RequestExecutionLevel user" in text and "$LOCALAPPDATA\\Programs" in text
    assert "CreateShortcut \"$SMPROGRAMS" in text and "WriteUninstaller" in text
    assert "HKLM" not in text  # nothing machine-wide


def test_macos_plist_has_the_three_usage_strings():
    with (INST / "macos" / "Info.plist").open("rb") as f:
        plist = plistlib.load(f)
    for key in ("NSCameraUsageDescription", "NSMicrophoneUsageDescription", "NSScreenCaptureUsageDescription"):
        assert len(plist.get(key, "")) > 30, key
    assert plist["CFBundleShortVersionString"] == "@VERSION@"  # build.py fills in pyproject's version
    assert plist["CFBundleIconFile"] == "presence.icns" and plist["CFBundleExecutable"] == "presence-gui"


def test_dmg_settings_name_the_app_and_applications_link():
    ns = {"defines": {"app": "/x/Presence.app"}}
    exec(compile((INST / "macos" / "dmg_settings.py").read_text(), "dmg_settings.py", "exec"), ns)  # noqa: S102
    assert ns["files"] == ["/x/Presence.app"] and ns["symlinks"] == {"Applications": "/Applications"}
    assert set(ns["icon_locations"]) == {"Presence.app", "Applications"}


def test_desktop_entry():
    text = (INST / "linux" / "presence.desktop").read_text()
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert fields["Exec"] == "presence" and fields["Icon"] == "presence" and fields["Type"] == "Application"
    if shutil.which("desktop-file-validate"):
        r = subprocess.run(["desktop-file-validate", str(INST / "linux" / "presence.desktop")], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout


def test_icons_have_every_size_each_platform_needs():
    from PIL import Image

    for s in (16, 24, 32, 48, 64, 128, 256, 512):
        with Image.open(ICONS / "png" / f"presence-{s}.png") as im:
            assert im.size == (s, s) and im.mode == "RGBA"
            assert im.getextrema()[3][0] == 0  # transparent corners: a rounded icon, not a square
    with Image.open(ICONS / "presence.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(ICONS / "presence.icns") as icns:
        assert icns.size[0] >= 512
    import xml.etree.ElementTree as ET

    assert ET.parse(ICONS / "presence.svg").getroot().tag.endswith("svg")


def test_release_workflow_builds_every_platform_with_build_py():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    on = wf.get("on", wf.get(True))  # PyYAML reads the bare key `on` as True
    assert on["push"]["tags"] == ["v*"]
    bundle = wf["jobs"]["bundle"]
    assert set(bundle["strategy"]["matrix"]["os"]) == {"ubuntu-22.04", "windows-2022", "macos-14"}
    runs = " ".join(s.get("run", "") for s in bundle["steps"])
    assert "installers/build.py" in runs and "--fast" in runs
    assert "secrets." not in (ROOT / "installers" / "build.py").read_text()


def test_pack_finder_serves_a_pack_before_the_bundled_copy(tmp_path, monkeypatch):
    sys.path.insert(0, str(INST))
    monkeypatch.syspath_prepend(str(tmp_path / "bundled"))
    import packs

    for where, tag in ((tmp_path / "bundled", "bundled"), (tmp_path / "packs" / "llama-cuda", "pack")):
        pkg = where / "presence_probe_pkg"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"WHERE = {tag!r}\n")
        (pkg / "sub.py").write_text(f"WHERE = {tag!r}\n")
    for m in ("presence_probe_pkg", "presence_probe_pkg.sub"):
        sys.modules.pop(m, None)
    importlib.invalidate_caches()
    import presence_probe_pkg  # negative control: without the finder the bundled copy wins

    assert presence_probe_pkg.WHERE == "bundled"
    for m in ("presence_probe_pkg", "presence_probe_pkg.sub"):
        sys.modules.pop(m, None)
    finder = packs.install_finder(tmp_path / "packs")
    try:
        import presence_probe_pkg
        import presence_probe_pkg.sub

        assert presence_probe_pkg.WHERE == "pack" and presence_probe_pkg.sub.WHERE == "pack"
        assert packs.install_finder(tmp_path / "nothing-here") is None
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(INST))
        for m in ("presence_probe_pkg", "presence_probe_pkg.sub"):
            sys.modules.pop(m, None)
