"""Screen-capture permissions and self-exclusion, in one place (NormCap-style onboarding).

``capture_guidance()`` says what the OS needs before screen capture works (Wayland portal, macOS
Screen Recording permission, no display); ``exclude_from_capture(window)`` keeps the app's own
window out of screen captures where the OS allows it, and returns a warning where it does not.
"""

from __future__ import annotations

import os
import sys


def session_kind() -> str:
    """windows | macos | wayland | x11 | headless."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    if os.environ.get("DISPLAY"):
        return "x11"
    return "headless"


def capture_guidance(kind: str | None = None) -> str:
    """One paragraph for the user, or "" when screen capture needs nothing."""
    kind = kind or session_kind()
    if kind == "macos":
        return ("macOS needs the Screen Recording permission: System Settings → Privacy & Security → "
                "Screen Recording → enable Presence (or your terminal), then restart Presence.")
    if kind == "wayland":
        return ("This is a Wayland session: apps cannot read the screen directly. Presence captures "
                "through XWayland when DISPLAY is set (other X11 apps only); for the whole desktop, log in to an "
                "X11 session, or share a window through the desktop portal (xdg-desktop-portal) with a "
                "screen-recording tool and pick it as a webcam/URL source.")
    if kind == "headless":
        return "No display is available (DISPLAY is not set): screen capture is off; use a file, webcam or URL."
    return ""


def exclude_from_capture(widget) -> tuple[bool, str]:
    """Hide ``widget``'s window from screen capture. Returns (excluded, warning)."""
    kind = session_kind()
    if kind == "windows":
        try:
            import ctypes

            wda_exclude_from_capture = 0x11  # Windows 10 2004+: the window is invisible to capture APIs
            ok = ctypes.windll.user32.SetWindowDisplayAffinity(int(widget.winId()), wda_exclude_from_capture)
            if ok:
                return True, ""
        except (AttributeError, OSError):
            pass
        return False, "Windows refused to hide this window from capture (needs Windows 10 2004 or later)."
    if kind == "macos":
        try:
            from AppKit import NSWindowSharingNone  # pyobjc, when installed
            from objc import objc_object

            view = objc_object(c_void_p=int(widget.winId()))
            view.window().setSharingType_(NSWindowSharingNone)
            return True, ""
        except Exception:  # noqa: BLE001 - pyobjc missing or API changed: warn instead
            return False, "Install pyobjc to hide Presence's window from its own screen capture on macOS."
    return False, ("This desktop cannot hide a window from screen capture: Presence's own window will be seen "
                   "when it is on the captured screen. Put it on another monitor or minimise it.")
