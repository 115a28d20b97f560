"""``[storage] encrypt = true``: the session store is SQLCipher-encrypted at rest. Its files (the WAL
included) hold none of the recorded text, while a plain store does (the control); the app's readers
open it with the key; without the key, opening it is one line. Here no OS keyring backend exists, so
the key goes to the documented fallback: a 0600 ``.presence-store.key`` beside the store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.wiring import DEMO_CLIP
from engine.store_key import KEY_FILE
from tests.faults.cli import ROOT, presence

pytest.importorskip("sqlcipher3", reason="sqlcipher3 (presence[encrypt]) not installed")


def record(base: Path) -> dict[bool, tuple[Path, list[str]]]:
    """A 6-second session into a plain and an encrypted store (in parallel); for each, the store and the
    texts it recorded (read from the run's log)."""
    runs = {}
    for encrypt in (False, True):
        folder = base / ("secret" if encrypt else "plain")
        folder.mkdir()
        cmd = ["run", "--headless", "--fast", "--no-speak", "--quiet", "--source", str(DEMO_CLIP), "--backend",
               "heuristic", "--duration", "6", "--log", str(folder / "run.jsonl"), "--store", str(folder / "s.sqlite"),
               "--set", f"storage.encrypt={str(encrypt).lower()}"]
        runs[encrypt] = (folder, subprocess.Popen([sys.executable, "-m", "app.cli", *cmd], cwd=ROOT, text=True,
                                                  stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"}))
    out = {}
    for encrypt, (folder, proc) in runs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        log = (folder / "run.jsonl").read_text()
        texts = [e["text"] for e in map(json.loads, log.splitlines()) if e.get("text")]
        assert texts and "session_started" in log
        out[encrypt] = (folder / "s.sqlite", texts + [DEMO_CLIP.name])
    return out


def on_disk(store: Path) -> bytes:
    return b"".join(f.read_bytes() for f in store.parent.glob(store.name + "*"))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    runs = record(tmp_path_factory.mktemp("enc"))
    return runs[False], runs[True]


def test_the_store_files_hold_no_plaintext(stores):
    (plain, texts), (secret, _) = stores
    assert all(t.encode() in on_disk(plain) for t in texts)  # control: a plain store holds them all
    assert not any(t.encode() in on_disk(secret) for t in texts)
    assert not secret.read_bytes().startswith(b"SQLite format 3")
    key = secret.parent / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes() not in on_disk(secret)


def test_sessions_and_ask_read_it_with_the_key(stores):
    (_plain, _), (secret, texts) = stores
    r = presence("sessions", "--store", str(secret))
    assert r.returncode == 0 and r.stderr == "" and "heuristic" in r.stdout and "6 s" in r.stdout, r
    session = r.stdout.split()[0]
    r = presence("ask", "--store", str(secret), session, "what was shown at 0:02?")
    assert r.returncode == 0 and r.stderr == "" and "[00:0" in r.stdout, r


def test_replay_reads_it_with_the_key(stores):
    (_plain, _), (secret, _) = stores
    r = presence("replay", str(secret))
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_without_the_key_it_is_one_line(stores, tmp_path):
    (_plain, _), (secret, _) = stores
    alone = tmp_path / "copied.sqlite"  # the store copied away from its key
    alone.write_bytes(secret.read_bytes())
    r = presence("ask", "--store", str(alone), "x", "what was shown?")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "encrypted and no key" in r.stderr and "Traceback" not in r.stderr


def test_keeping_frames_for_training_is_refused_in_one_line(tmp_path):
    """Training reads the store with plain sqlite3, so the two settings together are one line, not a traceback."""
    r = presence("run", "--headless", "--fast", "--no-speak", "--source", str(DEMO_CLIP), "--backend", "heuristic",
                 "--duration", "2", "--store", str(tmp_path / "s.sqlite"), "--set", "storage.encrypt=true",
                 "--set", "storage.keep_frames_for_training=true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "keep_frames_for_training" in r.stderr, r.stderr
    assert not (tmp_path / "s.sqlite").exists()


class MemoryKeyring:
    """FAKE OS keyring (no Secret Service on a headless machine): a dict, with keyring's backend API."""

    priority = 1

    def __init__(self):
        self.saved: dict = {}

    def get_password(self, service, user):
        return self.saved.get((service, user))

    def set_password(self, service, user, password):
        self.saved[(service, user)] = password


@pytest.mark.parametrize("backend", ["memory", "null"])
def test_the_key_goes_to_a_working_keyring_else_to_the_key_file(tmp_path, monkeypatch, backend):
    import keyring
    from keyring.backends import null

    from engine import store_key
    from engine.log import SqliteStore

    ring = MemoryKeyring() if backend == "memory" else null.Keyring()  # null: accepts and forgets
    monkeypatch.setattr(keyring, "get_keyring", lambda: ring)
    monkeypatch.setattr(keyring, "get_password", ring.get_password)
    monkeypatch.setattr(keyring, "set_password", ring.set_password)
    store = tmp_path / "s.sqlite"
    db = SqliteStore(store, encrypt=True)
    db({"v": 1, "session": "k1", "t": 0.0, "wall": "2026-01-01T00:00:00+00:00", "type": "session_started"})
    db.close()
    assert (store.parent / KEY_FILE).exists() == (backend == "null")
    if backend == "memory":
        assert list(ring.saved.values()) == store_key.candidate_keys(store)
    reader = SqliteStore(store, readonly=True)
    assert reader.encrypted and [s["session"] for s in reader.sessions()] == ["k1"]
    reader.close()
