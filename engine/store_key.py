"""The key of encrypted session stores (``[storage] encrypt = true``, SQLCipher through ``sqlcipher3``).

One random 256-bit key per user, used raw (no passphrase to stretch). Where it lives:

1. the OS keyring (``keyring``: Secret Service / KWallet on Linux, the macOS Keychain, the Windows
   Credential Locker), service ``presence``, entry ``session-store-key`` — the key never touches disk;
2. when no keyring backend exists (a headless machine, a minimal desktop), a key file
   ``.presence-store.key`` beside the store, created 0600 in the store's 0700 folder. This protects a
   store file copied away on its own (a backup, a synced folder, a shared log) — not against someone
   who can read the whole folder. Moving the key into a keyring later needs no migration: both places
   are tried when a store is opened.

A store that no available key opens is one readable line, never a traceback.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SERVICE, ENTRY = "presence", "session-store-key"
KEY_FILE = ".presence-store.key"


def _keyring():
    """The keyring module when a real backend is available, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    return None if isinstance(keyring.get_keyring(), fail.Keyring) else keyring


def _from_keyring() -> str | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        return kr.get_password(SERVICE, ENTRY)
    except Exception:  # noqa: BLE001 - a locked or broken keyring is "no key there"
        return None


def key_file(store: Path) -> Path:
    return store.parent / KEY_FILE


def _from_file(store: Path) -> str | None:
    try:
        return key_file(store).read_text().strip() or None
    except OSError:
        return None


def candidate_keys(store: Path) -> list[str]:
    """The keys that may open ``store``, keyring first; [] when there is none."""
    return [k for k in (_from_keyring(), _from_file(store)) if k]


def key_for_new_store(store: Path) -> str:
    """The key a new encrypted store is created with: the existing one, else a new one kept in the
    keyring, else in the key file beside the store (0600)."""
    existing = candidate_keys(store)
    if existing:
        return existing[0]
    key = secrets.token_hex(32)
    kr = _keyring()
    if kr is not None:
        try:
            kr.set_password(SERVICE, ENTRY, key)
            if kr.get_password(SERVICE, ENTRY) == key:  # read back: a null backend "stores" nothing
                return key
        except Exception:  # noqa: BLE001 - a keyring that refuses: fall back to the key file
            pass
    path = key_file(store)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
