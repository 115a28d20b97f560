"""A system-wide hot-key (the "pause capture" key): it works while another application has the focus,
which is exactly when a person needs it — about to type a password into a browser that Presence is
watching.

Qt has no global shortcuts, so this talks to the X server directly through libxcb (ctypes, no new
dependency): ``xcb_grab_key`` on the root window, and a thread that polls for the key press.
xcb rather than Xlib because Xlib reports a refused grab (another program owns the key) through a
process-wide error handler that would replace the one ``mss`` installs; xcb returns the error to the
caller. Available on X11 only; Wayland, Windows and macOS say so (``is_available``) and the window
falls back to its in-window shortcut.

Key names: ``"ctrl+alt+p"`` — modifiers ``ctrl``, ``alt``, ``shift``, ``super`` and one key, a letter,
a digit, ``f1``–``f12``, ``pause`` or ``space``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable

MODIFIERS = {"shift": 1, "ctrl": 4, "control": 4, "alt": 8, "super": 64, "win": 64}
LOCK_MASKS = (0, 2, 16, 2 | 16)  # the grab must also match with CapsLock (2) and NumLock (16) on
SPECIAL_KEYSYMS = {"pause": 0xFF13, "space": 0x20, **{f"f{i}": 0xFFBE + i - 1 for i in range(1, 13)}}
KEY_PRESS = 2
GRAB_MODE_ASYNC = 1


class HotkeyError(Exception):
    """One readable line: why the hot-key cannot be registered."""


def parse(spec: str) -> tuple[int, int]:
    """``"ctrl+alt+p"`` → (modifier mask, keysym)."""
    parts = [p.strip().lower() for p in spec.split("+") if p.strip()]
    if not parts:
        raise HotkeyError("empty hot-key")
    *mods, key = parts
    mask = 0
    for m in mods:
        if m not in MODIFIERS:
            raise HotkeyError(f"unknown modifier {m!r} in hot-key {spec!r} (ctrl, alt, shift, super)")
        mask |= MODIFIERS[m]
    if key in SPECIAL_KEYSYMS:
        return mask, SPECIAL_KEYSYMS[key]
    if len(key) == 1 and key.isascii() and key.isalnum():
        return mask, ord(key)  # Latin-1 keysyms equal their code points
    raise HotkeyError(f"unknown key {key!r} in hot-key {spec!r} (a letter, a digit, f1–f12, pause, space)")


class _Screen(ctypes.Structure):
    _fields_ = [("root", ctypes.c_uint32)]  # the first field of xcb_screen_t; the rest is not read


class _ScreenIterator(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(_Screen)), ("rem", ctypes.c_int), ("index", ctypes.c_int)]


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _Event(ctypes.Structure):
    _fields_ = [("response_type", ctypes.c_uint8)]


@functools.cache  # load and declare the two libraries once (is_available and every start ask)
def _libs():
    xcb_path, keysyms_path = ctypes.util.find_library("xcb"), ctypes.util.find_library("xcb-keysyms")
    if not xcb_path or not keysyms_path:
        return None
    xcb, keysyms = ctypes.CDLL(xcb_path), ctypes.CDLL(keysyms_path)
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_get_setup.restype = ctypes.c_void_p
    xcb.xcb_get_setup.argtypes = [ctypes.c_void_p]
    xcb.xcb_setup_roots_iterator.restype = _ScreenIterator
    xcb.xcb_setup_roots_iterator.argtypes = [ctypes.c_void_p]
    xcb.xcb_screen_next.argtypes = [ctypes.POINTER(_ScreenIterator)]
    xcb.xcb_grab_key_checked.restype = _Cookie
    xcb.xcb_grab_key_checked.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint16,
                                         ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint8]
    xcb.xcb_ungrab_key.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint16]
    xcb.xcb_request_check.restype = ctypes.c_void_p
    xcb.xcb_request_check.argtypes = [ctypes.c_void_p, _Cookie]
    xcb.xcb_poll_for_event.restype = ctypes.POINTER(_Event)
    xcb.xcb_poll_for_event.argtypes = [ctypes.c_void_p]
    xcb.xcb_flush.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    keysyms.xcb_key_symbols_alloc.restype = ctypes.c_void_p
    keysyms.xcb_key_symbols_alloc.argtypes = [ctypes.c_void_p]
    keysyms.xcb_key_symbols_get_keycode.restype = ctypes.POINTER(ctypes.c_uint8)
    keysyms.xcb_key_symbols_get_keycode.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    keysyms.xcb_key_symbols_free.argtypes = [ctypes.c_void_p]
    return xcb, keysyms


class GlobalHotkey:
    """Calls ``on_press`` (on its own thread) each time ``spec`` is pressed anywhere on the X display,
    until ``close``. ``start`` raises HotkeyError with one line when the key cannot be had."""

    poll_s = 0.05

    def __init__(self, spec: str, on_press: Callable[[], None], display: str | None = None):
        self.spec = spec
        self.mask, self.keysym = parse(spec)
        self.on_press = on_press
        self.display = display
        self._conn = None
        self._grabbed: list[tuple[int, int]] = []  # (keycode, modifiers) actually held
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, why not / how to get it)."""
        if os.name != "posix" or not (os.environ.get("DISPLAY")):
            return False, "a system-wide hot-key needs an X11 session; use the in-window shortcut"
        if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("XDG_SESSION_TYPE") == "wayland":
            return False, "Wayland does not let applications grab keys; use the in-window shortcut"
        if _libs() is None:
            return False, "libxcb and libxcb-keysyms are needed (apt install libxcb-keysyms1)"
        return True, ""

    def start(self) -> None:
        libs = _libs()
        if libs is None:
            raise HotkeyError("libxcb-keysyms is not installed (apt install libxcb-keysyms1)")
        xcb, keysyms = libs
        screen_no = ctypes.c_int(0)
        conn = xcb.xcb_connect(self.display.encode() if self.display else None, ctypes.byref(screen_no))
        if not conn or xcb.xcb_connection_has_error(conn):
            raise HotkeyError(f"cannot connect to the X display {self.display or os.environ.get('DISPLAY')!r}")
        it = xcb.xcb_setup_roots_iterator(xcb.xcb_get_setup(conn))
        for _ in range(screen_no.value):
            xcb.xcb_screen_next(ctypes.byref(it))
        root = it.data.contents.root
        syms = keysyms.xcb_key_symbols_alloc(conn)
        codes = keysyms.xcb_key_symbols_get_keycode(syms, self.keysym)
        keycode = codes[0] if codes else 0
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.free.argtypes = [ctypes.c_void_p]
        if codes:
            libc.free(ctypes.cast(codes, ctypes.c_void_p))
        keysyms.xcb_key_symbols_free(syms)
        if not keycode:
            xcb.xcb_disconnect(conn)
            raise HotkeyError(f"the keyboard has no key for {self.spec!r}")
        for lock in LOCK_MASKS:
            error = xcb.xcb_request_check(conn, xcb.xcb_grab_key_checked(
                conn, 1, root, self.mask | lock, keycode, GRAB_MODE_ASYNC, GRAB_MODE_ASYNC))
            if error:
                libc.free(error)
                for code, mods in self._grabbed:
                    xcb.xcb_ungrab_key(conn, code, root, mods)
                xcb.xcb_disconnect(conn)
                raise HotkeyError(f"another program already uses the hot-key {self.spec!r}; choose another in "
                                  "Settings → ui → pause_capture_hotkey")
            self._grabbed.append((keycode, self.mask | lock))
        xcb.xcb_flush(conn)
        self._xcb, self._libc, self._conn, self._root = xcb, libc, conn, root
        self._thread = threading.Thread(target=self._loop, name="hotkey", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        xcb, libc, conn = self._xcb, self._libc, self._conn
        while not self._stop.is_set():
            event = xcb.xcb_poll_for_event(conn)
            if not event:
                if xcb.xcb_connection_has_error(conn):
                    return  # the X server went away: nothing more will come
                self._stop.wait(self.poll_s)
                continue
            pressed = event.contents.response_type & 0x7F == KEY_PRESS
            libc.free(ctypes.cast(event, ctypes.c_void_p))
            if pressed:
                self.on_press()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._conn is not None:
            for code, mods in self._grabbed:
                self._xcb.xcb_ungrab_key(self._conn, code, self._root, mods)
            self._xcb.xcb_disconnect(self._conn)
            self._conn = None
            self._grabbed = []
