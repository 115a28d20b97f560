"""A whole session with the outside network made impossible, proving nothing tried to reach out.

Two layers: the run happens in a fresh network namespace (``unshare -n``: only a downed loopback
exists, so a non-loopback connection cannot succeed), and a Python audit hook installed through
``sitecustomize`` records every ``socket.connect`` / ``getaddrinfo`` attempt the process makes.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HOOK = r"""
import json, os, sys
_out = os.environ["PRESENCE_NET_AUDIT"]
def _hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.bind"):
        with open(_out, "a") as fh:
            fh.write(json.dumps([event, repr(args[1] if event == "socket.connect" else args[:2])]) + "\n")
sys.addaudithook(_hook)
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_session_makes_no_network_attempt(short_clip, tmp_path):
    hookdir = tmp_path / "hook"
    hookdir.mkdir()
    (hookdir / "sitecustomize.py").write_text(HOOK)
    audit = tmp_path / "net.jsonl"
    env = dict(os.environ, PYTHONPATH=f"{hookdir}:{ROOT}", PRESENCE_NET_AUDIT=str(audit),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("http_proxy", None)
    env.pop("https_proxy", None)
    cmd = [sys.executable, "-m", "app.cli", "run", "--source", str(short_clip), "--headless", "--fast",
           "--quiet", "--log", str(tmp_path / "o.jsonl"), "--store", str(tmp_path / "s.db")]
    isolated = _can_unshare()
    if isolated:
        cmd = ["unshare", "-n", *cmd]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    # the hook is live in the child: prove it by the session having run (events logged) ...
    events = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "decision" for e in events) == 12
    # ... and that it recorded no attempt to reach anything
    attempts = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
    loopback = ("'127.", "'::1'", "'localhost'", "'/")  # loopback probes (IPv6 support checks) are local
    outside = [a for a in attempts if not any(m in a[1] for m in loopback)]
    assert outside == [], outside
    if not isolated:
        pytest.skip("unshare -n unavailable: checked by the audit hook only")


def test_audit_hook_would_catch_an_attempt(tmp_path):
    """The detector is real: the same hook records a connection attempt when one is made."""
    hookdir = tmp_path / "hook"
    hookdir.mkdir()
    (hookdir / "sitecustomize.py").write_text(HOOK)
    audit = tmp_path / "net.jsonl"
    env = dict(os.environ, PYTHONPATH=str(hookdir), PRESENCE_NET_AUDIT=str(audit))
    code = "import socket\ns=socket.socket()\ns.settimeout(0.2)\ntry: s.connect(('127.0.0.1', 9))\nexcept OSError: pass"
    subprocess.run([sys.executable, "-c", code], env=env, timeout=30)
    assert "socket.connect" in audit.read_text()
