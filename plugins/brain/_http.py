"""Tiny JSON-over-HTTP client on the stdlib (no extra dependency; only the configured URL is used)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from engine.brain import BrainError


def api_key(env_name: str, service: str = "presence") -> str:
    """The API key: the OS keyring first (``keyring``), then the environment. Never the config file."""
    if not env_name:
        return ""
    try:
        import keyring

        key = keyring.get_password(service, env_name)
        if key:
            return key
    except Exception:  # noqa: BLE001 - no keyring backend on this machine: fall back to the env
        pass
    return os.environ.get(env_name, "")


def auth_headers(env_name: str) -> dict:
    """``Authorization: Bearer …`` when a key is configured (see ``api_key``), else nothing."""
    key = api_key(env_name)
    return {"Authorization": f"Bearer {key}"} if key else {}


def post_json(url: str, body: dict, timeout_s: float, headers: dict | None = None) -> dict:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise BrainError(f"brain at {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BrainError(f"brain at {url} is unreachable ({reason})") from None
    try:
        return json.loads(raw)
    except ValueError:
        raise BrainError(f"brain at {url} returned something that is not JSON") from None
