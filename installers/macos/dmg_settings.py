# dmgbuild settings: dmgbuild -s installers/macos/dmg_settings.py -D app=dist/lite/Presence.app "Presence" out.dmg
# (build.py runs it on the macOS runner). dmgbuild executes this file with `defines` in scope.
# ruff: noqa: F821
import os.path

app = defines.get("app", "dist/lite/Presence.app")
appname = os.path.basename(app)
format = "UDZO"
filesystem = "HFS+"
files = [app]
symlinks = {"Applications": "/Applications"}
badge_icon = defines.get("icon", os.path.join(app, "Contents", "Resources", "presence.icns"))
icon_locations = {appname: (140, 120), "Applications": (500, 120)}
window_rect = ((100, 100), (640, 300))
default_view = "icon-view"
icon_size = 128
